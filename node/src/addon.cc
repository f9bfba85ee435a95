// addon.cc — the native half of @a3s-lab/lane: one lc_engine per Engine
// object, exposed as small synchronous methods. Every scheduling decision is
// the engine's; lib/lane.js keeps the jobs (ticket -> job) and runs them.
//
// Tickets are JavaScript numbers: lib/lane.js counts them from 1, so they stay
// exact integers (below 2^53) and 0 can mean "nothing dispatched".
// Arguments are checked by lib/lane.js, the only caller; the checks
// here only keep a wrong call from reaching the engine with garbage.

#include <napi.h>

#include <cstdint>

#include "lane_core.h"

namespace {

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Uint32Value() : 0;
}

int32_t ArgI32(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : -1;
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) return 0;
  double value = info[i].As<Napi::Number>().DoubleValue();
  return value > 0 ? static_cast<uint64_t>(value) : 0;
}

Napi::Number Num(Napi::Env env, double value) { return Napi::Number::New(env, value); }

class Engine : public Napi::ObjectWrap<Engine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Engine",
        {
            InstanceMethod<&Engine::AddLane>("addLane"),
            InstanceMethod<&Engine::LaneCount>("laneCount"),
            InstanceMethod<&Engine::SetWorkers>("setWorkers"),
            InstanceMethod<&Engine::Submit>("submit"),
            InstanceMethod<&Engine::SubmitOrClaim>("submitOrClaim"),
            InstanceMethod<&Engine::TryClaim>("tryClaim"),
            InstanceMethod<&Engine::TryNext>("tryNext"),
            InstanceMethod<&Engine::TryNextDispatch>("tryNextDispatch"),
            InstanceMethod<&Engine::Complete>("complete"),
            InstanceMethod<&Engine::CompleteAndNext>("completeAndNext"),
            InstanceMethod<&Engine::Cancel>("cancel"),
            InstanceMethod<&Engine::Pause>("pause"),
            InstanceMethod<&Engine::Resume>("resume"),
            InstanceMethod<&Engine::LaneStats>("laneStats"),
            InstanceMethod<&Engine::Totals>("totals"),
            InstanceMethod<&Engine::Attach>("attach"),
            InstanceMethod<&Engine::Step>("step"),
        });
  }

  explicit Engine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Engine>(info) {
    engine_ = lc_engine_new(ArgU32(info, 0));
    if (engine_ == nullptr) Napi::Error::New(info.Env(), "lc_engine_new: out of memory")
                                .ThrowAsJavaScriptException();
  }

  ~Engine() override { lc_engine_free(engine_); }

 private:
  // addLane(priority, min, max) -> lane index, or an LC_ERR_* code (< 0).
  Napi::Value AddLane(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_lane_add(engine_, ArgI32(info, 0), ArgU32(info, 1), ArgU32(info, 2)));
  }

  Napi::Value LaneCount(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_lane_count(engine_));
  }

  // setWorkers(n) -> LC_OK or LC_ERR_BUDGET. 0 means unbounded.
  Napi::Value SetWorkers(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_set_workers(engine_, ArgU32(info, 0)));
  }

  // submit(lane, ticket[, nowNs]) -> LC_OK or an error code. nowNs 0 (or
  // absent) reads the engine's monotonic clock; tests inject time.
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    return Num(info.Env(),
               lc_submit(engine_, ArgU32(info, 0), ArgU64(info, 1), ArgU64(info, 2)));
  }

  // submitOrClaim(lane, ticket) -> LC_RUN_INLINE (the ticket is active: run
  // it now), LC_OK (it was queued) or an error code.
  Napi::Value SubmitOrClaim(const Napi::CallbackInfo& info) {
    return Num(info.Env(),
               lc_submit_or_claim(engine_, ArgU32(info, 0), ArgU64(info, 1), ArgU64(info, 2)));
  }

  // tryClaim(lane) -> LC_RUN_INLINE (a slot is now active: run the command
  // inline) or LC_NONE (nothing changed: it could not start at once).
  Napi::Value TryClaim(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_try_claim(engine_, ArgU32(info, 0)));
  }

  // tryNext() -> the ticket to run now (it is active), or 0 if none.
  Napi::Value TryNext(const Napi::CallbackInfo& info) {
    lc_dispatch out;
    if (lc_try_next(engine_, 0, &out) != LC_DISPATCHED) return Num(info.Env(), 0);
    return Num(info.Env(), static_cast<double>(out.ticket));
  }

  // tryNextDispatch() -> {lane, ticket, enqueuedNs} or null: the full
  // dispatch record, for scenario replays.
  Napi::Value TryNextDispatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    lc_dispatch out;
    if (lc_try_next(engine_, 0, &out) != LC_DISPATCHED) return env.Null();
    Napi::Object result = Napi::Object::New(env);
    result.Set("lane", Num(env, out.lane));
    result.Set("ticket", Num(env, static_cast<double>(out.ticket)));
    result.Set("enqueuedNs", Num(env, static_cast<double>(out.enqueued_ns)));
    return result;
  }

  // complete(lane, outcome) -> LC_OK or an error code.
  Napi::Value Complete(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_complete(engine_, ArgU32(info, 0), static_cast<int>(ArgU32(info, 1))));
  }

  // completeAndNext(lane, outcome) -> the next ticket to run (> 0), 0 if
  // none, or an error code: a completion and a dispatch in one call.
  Napi::Value CompleteAndNext(const Napi::CallbackInfo& info) {
    lc_dispatch out;
    int rc = lc_complete_and_wait(engine_, ArgU32(info, 0), static_cast<int>(ArgU32(info, 1)), 0,
                                  &out);
    if (rc == LC_DISPATCHED) return Num(info.Env(), static_cast<double>(out.ticket));
    return Num(info.Env(), rc < 0 ? rc : 0);
  }

  // cancel(lane, ticket) -> 1 if it was pending (now removed), 0 if not.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_cancel(engine_, ArgU32(info, 0), ArgU64(info, 1)));
  }

  Napi::Value Pause(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_pause(engine_, ArgU32(info, 0)));
  }

  Napi::Value Resume(const Napi::CallbackInfo& info) {
    return Num(info.Env(), lc_resume(engine_, ArgU32(info, 0)));
  }

  // laneStats(lane) -> an object of the engine's counters, or null.
  Napi::Value LaneStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    lc_lane_stats s;
    if (lc_read_lane_stats(engine_, ArgU32(info, 0), &s) != LC_OK) return env.Null();
    Napi::Object result = Napi::Object::New(env);
    result.Set("priority", Num(env, s.priority));
    result.Set("minConcurrency", Num(env, s.min_concurrency));
    result.Set("maxConcurrency", Num(env, s.max_concurrency));
    result.Set("paused", Napi::Boolean::New(env, s.paused != 0));
    result.Set("pending", Num(env, static_cast<double>(s.pending)));
    result.Set("active", Num(env, static_cast<double>(s.active)));
    result.Set("submitted", Num(env, static_cast<double>(s.submitted)));
    result.Set("dispatched", Num(env, static_cast<double>(s.dispatched)));
    result.Set("completed", Num(env, static_cast<double>(s.completed)));
    result.Set("failed", Num(env, static_cast<double>(s.failed)));
    result.Set("cancelled", Num(env, static_cast<double>(s.cancelled)));
    return result;
  }

  // totals() -> [pending, active] over every lane.
  Napi::Value Totals(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t pending = 0, active = 0;
    lc_totals(engine_, &pending, &active);
    Napi::Array result = Napi::Array::New(env, 2);
    result.Set(uint32_t{0}, Num(env, static_cast<double>(pending)));
    result.Set(uint32_t{1}, Num(env, static_cast<double>(active)));
    return result;
  }

  // attach(io: Float64Array) — the exchange area of step(), kept for the
  // engine's lifetime: lib/lane.js writes completions and submits into it
  // and reads dispatches back, so a batch costs one call across N-API
  // instead of one per job. Layout (all small integers, exact in a double):
  //   [0]                      out: submits that failed (their lane slot
  //                            then holds the LC_ERR_* code, < 0)
  //   [1, 1 + cap)             completions: lane * 4 + outcome
  //   [1 + cap, 1 + 3 cap)     submits: lane, ticket pairs
  //   [1 + 3 cap, 1 + 5 cap)   dispatches out: lane, ticket pairs
  // cap = (length - 1) / 5.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      Napi::TypeError::New(env, "attach(io): io must be a Float64Array").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Float64Array io = info[0].As<Napi::Float64Array>();
    io_ref_ = Napi::Persistent(io);
    io_ = io.Data();
    io_cap_ = io.ElementLength() > 0 ? (io.ElementLength() - 1) / 5 : 0;
    return Num(env, static_cast<double>(io_cap_));
  }

  // step(nComplete, nSubmit, maxDispatch) -> the number of dispatches written
  // (each ticket is active: run it), or an LC_ERR_* code (< 0) if a
  // completion was refused (the rest of the batch is applied, nothing more
  // is dispatched). The batch is scheduled as one: its submits first, then
  // its completions, each freed slot taken at once by the next ticket (one
  // engine call, lc_complete_and_wait), then more dispatches up to
  // maxDispatch. Per job that is two engine calls (each one lock round
  // trip): its submit and the completion that hands its slot on.
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t n_complete = ArgU32(info, 0), n_submit = ArgU32(info, 1), max = ArgU32(info, 2);
    if (io_ == nullptr || n_complete > io_cap_ || n_submit > io_cap_ || max > io_cap_) {
      return Num(env, LC_ERR_INVALID);
    }
    double* submit = io_ + 1 + io_cap_;
    uint32_t failed = 0;
    // One clock read per batch: the i-th submit is stamped now + i ns, so
    // the stamps keep the submit order (the engine breaks priority ties
    // between lanes by them), also across batches. Every enqueue of a Lane
    // comes through here, so no other stamp falls between them.
    uint64_t now = 0;
    if (n_submit) {
      now = lc_now_ns();
      if (now <= last_submit_ns_) now = last_submit_ns_ + 1;
      last_submit_ns_ = now + n_submit - 1;
    }
    for (size_t i = 0; i < n_submit; i++) {
      int rc = lc_submit(engine_, static_cast<uint32_t>(submit[2 * i]),
                         static_cast<uint64_t>(submit[2 * i + 1]), now + i);
      if (rc != LC_OK) {
        submit[2 * i] = rc;
        failed++;
      }
    }
    io_[0] = failed;

    int error = LC_OK;
    double* complete = io_ + 1;
    double* out = io_ + 1 + 3 * io_cap_;
    size_t n = 0;
    bool more = n_complete == 0;  // may lc_try_next find something?
    lc_dispatch d;
    for (size_t i = 0; i < n_complete; i++) {
      uint32_t code = static_cast<uint32_t>(complete[i]);
      uint32_t lane = code >> 2;
      int outcome = static_cast<int>(code & 3);
      int rc;
      if (n < max && error == LC_OK) {
        rc = lc_complete_and_wait(engine_, lane, outcome, 0, &d);
        if (rc == LC_DISPATCHED) {
          out[2 * n] = d.lane;
          out[2 * n + 1] = static_cast<double>(d.ticket);
          n++;
        }
        // Nothing changed since a dispatch found nothing, until the next
        // completion (which looks again itself).
        more = rc == LC_DISPATCHED;
      } else {
        rc = lc_complete(engine_, lane, outcome);
        more = true;
      }
      if (rc < 0 && error == LC_OK) error = rc;
    }
    if (error != LC_OK) return Num(env, error);
    while (more && n < max && lc_try_next(engine_, 0, &d) == LC_DISPATCHED) {
      out[2 * n] = d.lane;
      out[2 * n + 1] = static_cast<double>(d.ticket);
      n++;
    }
    return Num(env, static_cast<double>(n));
  }

  lc_engine* engine_ = nullptr;
  Napi::Reference<Napi::Float64Array> io_ref_;
  double* io_ = nullptr;
  size_t io_cap_ = 0;
  uint64_t last_submit_ns_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", Engine::Define(env));
  Napi::Object codes = Napi::Object::New(env);
  codes.Set("OK", Num(env, LC_OK));
  codes.Set("NONE", Num(env, LC_NONE));
  codes.Set("DISPATCHED", Num(env, LC_DISPATCHED));
  codes.Set("RUN_INLINE", Num(env, LC_RUN_INLINE));
  codes.Set("ERR_NOMEM", Num(env, LC_ERR_NOMEM));
  codes.Set("ERR_NO_LANE", Num(env, LC_ERR_NO_LANE));
  codes.Set("ERR_INVALID", Num(env, LC_ERR_INVALID));
  codes.Set("ERR_STOPPED", Num(env, LC_ERR_STOPPED));
  codes.Set("ERR_BUDGET", Num(env, LC_ERR_BUDGET));
  codes.Set("ERR_NOT_ACTIVE", Num(env, LC_ERR_NOT_ACTIVE));
  codes.Set("OUTCOME_COMPLETED", Num(env, LC_OUTCOME_COMPLETED));
  codes.Set("OUTCOME_FAILED", Num(env, LC_OUTCOME_FAILED));
  codes.Set("OUTCOME_CANCELLED", Num(env, LC_OUTCOME_CANCELLED));
  exports.Set("codes", codes);
  return exports;
}

}  // namespace

NODE_API_MODULE(a3s_lane, Init)
