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

  lc_engine* engine_ = nullptr;
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
