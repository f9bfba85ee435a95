#!lua name=a3s_lane
--[[
a3s-lane's lane rules, inside Redis (7.0+): one function library that every
SDK loads (Python: pylane/redis; Node: node/lib/redis, from this very file).

A queue lives under one base key, "a3s:{<queue>}", the one key each function
is given (KEYS[1]). Every other key of the queue is derived from it by a
suffix, so all of them share the hash tag {<queue>}: one queue, one shard.

  <base>:meta             hash: seq, lease_seq, slots (live workers' slots),
                          late_acks, requeued, events_max, dead_max, max_lost,
                          seen (the last heartbeat or join: see reap's grace)
  <base>:lanes            list: lane ids in the order they were registered
  <base>:config           hash: lane id -> config JSON (see register_lanes)
  <base>:sched            hash: lane id -> its scheduling state, packed:
                          "active paused tokens refilled throttled_until
                          dispatched completed" (see packed())
  <base>:lane:<lane>      hash: the lane's other counters (submitted, ...)
  <base>:q:<lane>         list: the lane's pending command ids, front first
  <base>:cmd:<id>         hash: lane, type, payload, seq, enq, state, reply,
                          failures, lost, starts, worker, lease
  <base>:delayed          zset: command id -> due time (retry back-off)
  <base>:workers          zset: worker id -> lease expiry
  <base>:worker:<wid>     hash: slots, types (JSON list), joined, beat, lease (ms), info,
                          woken (slots woken by a token and not claimed for since),
                          direct (1: a submit may lease it commands itself, see wake)
  <base>:leased:<wid>     set: the command ids a worker holds
  <base>:types            hash: command type -> live workers handling it
  <base>:dead             list: dead letters (JSON), oldest first, bounded
  <base>:events           stream: key, data (JSON); one entry per call: a single
                          event, or key "batch" and data [{key, data}, ...];
                          XADD MAXLEN ~ events_max (entries)
  <base>:wake:<wid>       list: wake tokens the worker's idle slots block on ("1"),
                          or, for a direct worker, records of commands leased to it
  <base>:results:<client> list: results for one submitting client (BLMOVE)

Time: every function takes ARGV[1] = now in milliseconds, or "" for Redis
TIME (production). Only tests pass a time, to replay scenarios.

The scheduling rule is the C engine's (c_core/lane_core.c, lane_rules.c):
the eligible lane with the lowest effective priority goes first (deadline
boost from its front command's age; -1 past the deadline), ties to the
older front (lower seq); a lane is eligible when it has pending commands,
is not paused, runs fewer than its max and is not throttled; with F free
slots (live workers' slots minus active) and U unfilled reservations
(sum of min - active where positive), any eligible lane may go when F > U,
otherwise only a lane below its own min. A rate-limited lane is checked
when picked: without a token it is throttled until its next token and the
pick is made again. On top: a worker takes a lane only if it can run the
lane's front command (it handles the type, or no live worker does).
]]

local VERSION = 3
local COMPATIBLE_FROM = 1 -- a loaded library this old or newer is replaced in place

local DEFAULT_EVENTS_MAX = 10000
local DEFAULT_DEAD_MAX = 10000
local DEFAULT_MAX_LOST = 5
local RESULT_TTL_MS = 86400000

-- ---- helpers ---------------------------------------------------------------

local function now_of(arg)
  if arg ~= nil and arg ~= '' then
    local t = tonumber(arg)
    if not t then error('A3S_ARG now_ms is not a number: ' .. tostring(arg)) end
    return t
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function ms(x) return string.format('%.3f', x) end

local function fail(code, message)
  return redis.error_reply(code .. ' ' .. message)
end

local function lane_key(base, lane) return base .. ':lane:' .. lane end
local function queue_key(base, lane) return base .. ':q:' .. lane end
local function cmd_key(base, id) return base .. ':cmd:' .. id end

local function meta_number(base, field, default)
  local v = redis.call('HGET', base .. ':meta', field)
  return tonumber(v) or default
end

-- What one function call reads once and reuses, and the results it
-- delivers at its end: every function runs through entry() below, which
-- starts it afresh, so nothing leaks from one call (or queue) into the next.
local call_ctx = {}

-- An event, written with the call's others by flush_events.
local function emit(base, key, data)
  local events = call_ctx.events
  if events == nil then
    events = {}
    call_ctx.events = events
  end
  events[#events + 1] = { key = key, data = data }
end

-- One stream entry per call: {key, data} for a single event, or key
-- "batch" with data a JSON list of {key, data} in the order they happened
-- (readers expand it). One XADD instead of one per event.
local function flush_events(base)
  local events = call_ctx.events
  if events == nil then return end
  call_ctx.events = nil
  local max = meta_number(base, 'events_max', DEFAULT_EVENTS_MAX)
  local key, data = 'batch', events
  if #events == 1 then key, data = events[1].key, events[1].data end
  redis.call('XADD', base .. ':events', 'MAXLEN', '~', max, '*', 'key', key,
             'data', cjson.encode(data))
end

-- Wakes up to n idle worker slots that can run one of `types` (nil: any
-- type): tokens in each chosen worker's own wake list, which its idle slots
-- block on. A worker's free slots are its slots minus what it holds minus
-- `woken`: slots already woken whose claim has not reached Redis yet (a
-- claim for f slots takes f off it). So a token read but not yet acted on
-- never makes its worker look free twice, and a burst of submits spreads
-- over the workers that really have idle slots. Workers with the most free
-- slots go first; no worker gets more tokens than it has free slots.
--
-- The live workers with free slots, in their order in <base>:workers:
-- {wid, free, types (JSON text)}.
local function idle_workers(base)
  local idle = {}
  for _, wid in ipairs(redis.call('ZRANGE', base .. ':workers', 0, -1)) do
    local w = redis.call('HMGET', base .. ':worker:' .. wid, 'slots', 'types', 'woken', 'direct')
    local free = (tonumber(w[1]) or 0) - redis.call('SCARD', base .. ':leased:' .. wid)
                 - (tonumber(w[3]) or 0)
    if free > 0 then
      idle[#idle + 1] = { wid = wid, free = free, types = w[2], direct = w[4] == '1' }
    end
  end
  return idle
end

-- (`idle`: idle_workers(), when the caller has it already. `direct`, from a
-- submit: function(wid, k, types JSON) that leases up to k commands to a
-- worker that joined with `direct` and returns how many; such a worker gets
-- no token.)
local function wake(base, n, types, idle, direct)
  if n <= 0 then return end
  local candidates = {}
  for _, c in ipairs(idle or idle_workers(base)) do
    local fits = types == nil
    if not fits then
      local mine = {}
      for _, t in ipairs(cjson.decode(c.types or '[]')) do mine[t] = true end
      for _, t in ipairs(types) do
        if mine[t] or (tonumber(redis.call('HGET', base .. ':types', t)) or 0) == 0 then
          fits = true
          break
        end
      end
    end
    if fits then
      candidates[#candidates + 1] = { wid = c.wid, free = c.free, at = #candidates,
                                      types = c.types, direct = c.direct }
    end
  end
  table.sort(candidates, function(a, b)
    if a.free ~= b.free then return a.free > b.free end
    return a.at < b.at
  end)
  for _, c in ipairs(candidates) do
    if n <= 0 then break end
    local k = c.free
    if k > n then k = n end
    if direct ~= nil and c.direct then
      n = n - direct(c.wid, k, c.types)
    else
      local tokens = {}
      for i = 1, k do tokens[i] = '1' end
      redis.call('RPUSH', base .. ':wake:' .. c.wid, unpack(tokens))
      redis.call('HINCRBY', base .. ':worker:' .. c.wid, 'woken', k)
      n = n - k
    end
  end
end

-- A result for the client that submitted (none for ''), written to its
-- results list by flush_results: one RPUSH per client and call.
local function deliver(base, reply, message)
  if reply == nil or reply == false or reply == '' then return end
  local out = call_ctx.results
  if out == nil then
    out = { order = {} }
    call_ctx.results = out
  end
  local list = out[reply]
  if list == nil then
    list = {}
    out[reply] = list
    out.order[#out.order + 1] = reply
  end
  list[#list + 1] = cjson.encode(message)
end

local function flush_results(base)
  local out = call_ctx.results
  if out == nil then return end
  call_ctx.results = nil
  for _, reply in ipairs(out.order) do
    local key = base .. ':results:' .. reply
    local list = out[reply]
    for at = 1, #list, 1000 do
      redis.call('RPUSH', key, unpack(list, at, math.min(at + 999, #list)))
    end
    redis.call('PEXPIRE', key, RESULT_TTL_MS)
  end
end

local function hash_of(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- ---- lanes -----------------------------------------------------------------

-- A lane's counters (its hash, beside its scheduling state).
local COUNTERS = { 'submitted', 'dispatched', 'completed', 'failed', 'cancelled', 'delayed',
                   'retried', 'timed_out', 'dead_lettered', 'requeued' }

-- lane_rules.c boost_configure: boost windows in a stable sort, widest first.
local function normalized(cfg)
  if cfg.boost then
    local sorted = {}
    for _, w in ipairs(cfg.boost.windows or {}) do
      local at = #sorted + 1
      while at > 1 and sorted[at - 1][1] < w[1] do
        sorted[at] = sorted[at - 1]
        at = at - 1
      end
      sorted[at] = w
    end
    cfg.boost.windows = sorted
  end
  return cfg
end

-- Decoded lane configs by their stored text: a config never changes once
-- stored (register_lanes refuses a different one), so the same text always
-- decodes to the same table, read-only after normalized(). Bounded.
local config_cache, config_cached = {}, 0
local function config_of(text)
  local cfg = config_cache[text]
  if cfg == nil then
    if config_cached >= 4096 then config_cache, config_cached = {}, 0 end
    cfg = normalized(cjson.decode(text))
    config_cache[text] = cfg
    config_cached = config_cached + 1
  end
  return cfg
end

-- A lane's scheduling state lives in one field of <base>:sched, packed as
-- "active paused tokens refilled throttled_until dispatched completed"
-- (numbers, paused 0|1): one HMGET reads every lane's, one HSET writes the
-- changed ones. The two counters every claim changes live here too, so a
-- claim writes no counter of its own; the others stay in the lane's hash
-- (HINCRBY when they change). Older forms are read once and written back
-- in this one: library version 1 kept the state in the lane's hash,
-- version 2 packed its first five numbers here and kept every counter in
-- the lane's hash (whose dispatched / completed are stale from then on).
local HOT_COUNTERS = { dispatched = true, completed = true }

local function packed(lane)
  return string.format('%d %d %.17g %.17g %.17g %d %d', lane.active, lane.paused and 1 or 0,
                       lane.tokens, lane.refilled, lane.throttled, lane.dispatched,
                       lane.completed)
end

-- Fills in `lane` (its id set) from its packed state `text` (nil: none);
-- returns true when that was in an older form.
local function read_state(base, lane, text)
  if text then
    local a, p, t, r, th, rest = string.match(text, '^(%S+) (%S+) (%S+) (%S+) (%S+)(.*)$')
    lane.active, lane.paused, lane.tokens, lane.refilled, lane.throttled =
      tonumber(a), p == '1', tonumber(t), tonumber(r), tonumber(th)
    local d, c = string.match(rest, '^ (%S+) (%S+)$')
    if d then
      lane.dispatched, lane.completed = tonumber(d), tonumber(c)
      return false
    end
  else
    local st = redis.call('HMGET', lane_key(base, lane.id), 'active', 'paused', 'tokens',
                          'refilled', 'throttled_until')
    lane.active, lane.paused, lane.tokens, lane.refilled, lane.throttled =
      tonumber(st[1]) or 0, st[2] == '1', tonumber(st[3]) or 0, tonumber(st[4]) or 0,
      tonumber(st[5]) or 0
  end
  local n = redis.call('HMGET', lane_key(base, lane.id), 'dispatched', 'completed')
  lane.dispatched, lane.completed = tonumber(n[1]) or 0, tonumber(n[2]) or 0
  return true
end

-- Every lane with its config and scheduling state, in registration order.
local function load_lanes(base)
  local ids = redis.call('LRANGE', base .. ':lanes', 0, -1)
  local lanes, by_id = {}, {}
  if #ids == 0 then return lanes, by_id end
  local texts = hash_of(redis.call('HGETALL', base .. ':config'))
  local states = redis.call('HMGET', base .. ':sched', unpack(ids))
  for i, id in ipairs(ids) do
    local cfg = config_of(texts[id])
    local lane = {
      id = id, cfg = cfg, pending = redis.call('LLEN', queue_key(base, id)),
      front = nil, buf = nil, at = 1, taken = 0, counts = {},
    }
    lane.dirty = read_state(base, lane, states[i] or nil)
    if cfg.rate then lane.rate_ns = cfg.rate.max / (cfg.rate.window_ms * 1e6) end
    lanes[i] = lane
    by_id[id] = lane
  end
  return lanes, by_id
end

-- A lane counter's change, written by save_lanes.
local function count(lane, name, n)
  if HOT_COUNTERS[name] then
    lane[name] = lane[name] + (n or 1)
    lane.dirty = true
  else
    lane.counts[name] = (lane.counts[name] or 0) + (n or 1)
  end
end

-- The changed lanes' state in one HSET; their other counters (in each
-- lane's own hash) by what changed.
local function save_lanes(base, lanes)
  local fields = {}
  for _, lane in ipairs(lanes) do
    if lane.dirty then
      fields[#fields + 1] = lane.id
      fields[#fields + 1] = packed(lane)
      lane.dirty = false
    end
    for name, n in pairs(lane.counts) do
      if n ~= 0 then redis.call('HINCRBY', lane_key(base, lane.id), name, n) end
    end
    lane.counts = {}
  end
  if #fields > 0 then redis.call('HSET', base .. ':sched', unpack(fields)) end
end

-- The lane's front command: id, seq, enq, type, and what a claim of it
-- needs (payload, failures, starts) read with them in one HMGET; false when
-- the lane is empty. Ids come `want` at a time (one LRANGE): a claim that
-- takes several commands from one lane reads them at once, and take()
-- only counts them, so that trim_taken() takes them off the list in one
-- LTRIM at the claim's end. Until then the list still holds them: `taken`
-- is where the unclaimed part starts.
local function front(base, lane, want)
  if lane.front == nil then
    local buf = lane.buf
    if buf == nil or lane.at > #buf then
      buf = redis.call('LRANGE', queue_key(base, lane.id), lane.taken,
                       lane.taken + (want or 1) - 1)
      lane.buf, lane.at = buf, 1
    end
    local id = buf[lane.at]
    if not id then
      lane.front = false
    else
      local f = redis.call('HMGET', cmd_key(base, id), 'seq', 'enq', 'type', 'payload',
                           'failures', 'starts')
      lane.front = { id = id, seq = tonumber(f[1]), enq = tonumber(f[2]), type = f[3],
                     payload = f[4], failures = tonumber(f[5]) or 0,
                     starts = tonumber(f[6]) or 0 }
    end
  end
  return lane.front
end

-- Claims the lane's front command (front() read it): counted, not yet
-- taken off the list (trim_taken does that).
local function take(lane)
  local fr = lane.front
  lane.taken = lane.taken + 1
  lane.at = lane.at + 1
  lane.front = nil
  lane.pending = lane.pending - 1
  return fr
end

-- Takes the claimed commands off their lanes' lists: one LTRIM per lane. A
-- front read but not claimed stays valid (it is now at the list's head).
local function trim_taken(base, lanes)
  for _, lane in ipairs(lanes) do
    if lane.taken > 0 then
      redis.call('LTRIM', queue_key(base, lane.id), lane.taken, -1)
      lane.taken, lane.buf, lane.at = 0, nil, 1
    end
  end
end

-- The lane's list changed at its head (LPUSH, never within a claim, so
-- nothing is taken yet): forget what front() read.
local function reread(lane)
  lane.front, lane.buf, lane.at = nil, nil, 1
end

-- lane_rules.c: the token bucket, in the engine's nanosecond arithmetic.
local function refill(lane, now)
  if now <= lane.refilled then return end
  local tokens = lane.tokens + (now - lane.refilled) * 1e6 * lane.rate_ns
  local burst = lane.cfg.rate.max
  if tokens > burst then tokens = burst end
  lane.tokens = tokens
  lane.refilled = now
  lane.dirty = true
end

local function bucket_take(lane, now)
  refill(lane, now)
  if lane.tokens < 1.0 then return false end
  lane.tokens = lane.tokens - 1.0
  lane.dirty = true
  return true
end

local function throttle(lane, now)
  local missing = 1.0 - lane.tokens
  local wait_ns = 1
  if missing > 0 then wait_ns = math.floor(missing / lane.rate_ns) + 1 end
  lane.throttled = now + wait_ns / 1e6
  lane.dirty = true
end

-- lane_rules.c effective_priority: windows are sorted widest first.
local function priority_now(lane, fr, now)
  local boost = lane.cfg.boost
  if not boost then return lane.cfg.priority end
  local due = fr.enq + boost.deadline_ms
  if now >= due then return -1 end
  local left = due - now
  local amount = 0
  for _, w in ipairs(boost.windows) do
    if w[1] >= left then amount = w[2] else break end
  end
  local p = lane.cfg.priority - amount
  if p < 0 then p = 0 end
  return p
end

local function runnable(lane)
  return lane.pending > 0 and not lane.paused and lane.active < lane.cfg.max
      and lane.throttled == 0
end

-- Which command types a worker may take: those it handles, and those no
-- live worker handles (anyone runs them: the SDK echoes unknown types).
local function type_filter(base, raw)
  local mine = {}
  if raw then for _, t in ipairs(cjson.decode(raw)) do mine[t] = true end end
  local known = {}
  return function(t)
    if mine[t] then return true end
    if known[t] == nil then
      known[t] = (tonumber(redis.call('HGET', base .. ':types', t)) or 0) == 0
    end
    return known[t]
  end
end

-- The lane the next dispatch comes from, or nil: lane_core.c's
-- pick_lane_locked + rate check of take_next_locked, for a worker that can
-- run `can_run` types.
local function pick(base, lanes, slots, now, can_run, want)
  while true do
    local total_active, unfilled = 0, 0
    for _, lane in ipairs(lanes) do
      total_active = total_active + lane.active
      if lane.active < lane.cfg.min then unfilled = unfilled + lane.cfg.min - lane.active end
    end
    if total_active >= slots then return nil end
    local reserved_only = not (slots - total_active > unfilled)
    local best, best_p, best_seq
    for _, lane in ipairs(lanes) do
      if runnable(lane) and (not reserved_only or lane.active < lane.cfg.min) then
        local fr = front(base, lane, want)
        if fr and can_run(fr.type) then
          local p = priority_now(lane, fr, now)
          if best == nil or p < best_p or (p == best_p and fr.seq < best_seq) then
            best, best_p, best_seq = lane, p, fr.seq
          end
        end
      end
    end
    if best == nil then return nil end
    if best.rate_ns == nil or bucket_take(best, now) then return best end
    throttle(best, now)
  end
end

-- ---- commands ending ---------------------------------------------------------

local function retry_delay_ms(policy, attempt)
  if not policy or attempt <= 0 or policy.max_retries == 0 then return 0 end
  local initial, cap, mult = policy.initial_ms, policy.max_ms, policy.multiplier
  if initial == 0 or mult == 1 then
    if initial < cap then return initial end
    return cap
  end
  if (attempt - 1) * math.log(mult) >= math.log(cap / initial) then return cap end
  local d = initial * mult ^ (attempt - 1)
  if d < cap then return d end
  return cap
end

local function dead_letter(base, lane, cmd, id, error_text, attempts, now)
  if cmd.payload == nil then cmd.payload = redis.call('HGET', cmd_key(base, id), 'payload') end
  local letter = cjson.encode({
    command_id = id, command_type = cmd.type, lane_id = lane.id, error = error_text,
    attempts = attempts, failed_at_ms = ms(now), payload = cmd.payload,
  })
  local key = base .. ':dead'
  redis.call('RPUSH', key, letter)
  local max = meta_number(base, 'dead_max', DEFAULT_DEAD_MAX)
  if redis.call('LLEN', key) > max then redis.call('LTRIM', key, -max, -1) end
  count(lane, 'dead_lettered')
  emit(base, 'queue.command.dead_lettered',
       { lane_id = lane.id, command_id = id, command_type = cmd.type })
end

-- Frees the slot of a running command (the caller checked its lease and
-- takes it out of its worker's leased set).
local function release(lane)
  lane.active = lane.active - 1
  lane.dirty = true
end

-- Ends an attempt: completed, or failed / timed out (retry or dead letter).
local function finish(base, lane, cmd, id, ack, now)
  if ack.status == 'ok' then
    count(lane, 'completed')
    emit(base, 'queue.command.completed', { lane_id = lane.id, command_id = id })
    deliver(base, cmd.reply, { id = id, status = 'ok', result = ack.result or 'null' })
    redis.call('DEL', cmd_key(base, id))
    return
  end
  local failures = (tonumber(cmd.failures) or 0) + 1
  local policy = lane.cfg.retry
  local error_text = ack.error or 'failed'
  if policy and failures <= policy.max_retries then
    local due = now + retry_delay_ms(policy, failures)
    redis.call('HSET', cmd_key(base, id), 'state', 'delayed', 'failures', failures,
               'enq', now, 'worker', '', 'lease', '')
    redis.call('ZADD', base .. ':delayed', due, id)
    count(lane, 'delayed')
    count(lane, 'retried')
    emit(base, 'queue.command.retry', { lane_id = lane.id, command_id = id, attempt = failures })
    return
  end
  count(lane, 'failed')
  if ack.status == 'timeout' then
    count(lane, 'timed_out')
    emit(base, 'queue.command.timeout', { lane_id = lane.id, command_id = id, error = error_text })
  else
    emit(base, 'queue.command.failed', { lane_id = lane.id, command_id = id, error = error_text })
  end
  dead_letter(base, lane, cmd, id, error_text, failures, now)
  deliver(base, cmd.reply, { id = id, status = ack.status, error = error_text })
  redis.call('DEL', cmd_key(base, id))
end

-- Applies a worker's acks; returns the ids whose lease it no longer holds.
local function apply_acks(base, by_id, wid, acks, now)
  local rejected, done = {}, {}
  for _, ack in ipairs(acks) do
    local id = ack.id
    local f = redis.call('HMGET', cmd_key(base, id), 'lane', 'state', 'lease', 'worker',
                         'reply', 'failures', 'type')
    local cmd = { lane = f[1] or nil, state = f[2] or nil, lease = f[3] or nil,
                  worker = f[4] or nil, reply = f[5] or nil, failures = f[6] or nil,
                  type = f[7] or nil }
    local lane = cmd.lane and by_id[cmd.lane]
    if cmd.state ~= 'running' or cmd.lease ~= ack.lease or cmd.worker ~= wid or not lane then
      rejected[#rejected + 1] = id
      redis.call('HINCRBY', base .. ':meta', 'late_acks', 1)
    else
      release(lane)
      done[#done + 1] = id
      finish(base, lane, cmd, id, ack, now)
    end
  end
  for at = 1, #done, 1000 do
    redis.call('SREM', base .. ':leased:' .. wid, unpack(done, at, math.min(at + 999, #done)))
  end
  return rejected
end

-- The due time of the next delayed command, or nil.
local function next_delayed(base)
  local first = redis.call('ZRANGE', base .. ':delayed', 0, 0, 'WITHSCORES')
  return tonumber(first[2])
end

-- Moves due delayed commands to the back of their lanes; returns how many,
-- and when the next delayed command is due (nil: none is).
local function promote_due(base, by_id, now)
  local first = next_delayed(base)
  if first == nil or first > now then return 0, first end
  local due = redis.call('ZRANGEBYSCORE', base .. ':delayed', '-inf', now)
  for _, id in ipairs(due) do
    redis.call('ZREM', base .. ':delayed', id)
    local lane_id = redis.call('HGET', cmd_key(base, id), 'lane')
    local lane = lane_id and by_id[lane_id]
    if lane then
      local seq = redis.call('HINCRBY', base .. ':meta', 'seq', 1)
      redis.call('HSET', cmd_key(base, id), 'state', 'pending', 'seq', seq)
      redis.call('RPUSH', queue_key(base, lane.id), id)
      count(lane, 'delayed', -1)
      lane.pending = lane.pending + 1
      if lane.pending == 1 then reread(lane) end
    end
  end
  return #due, next_delayed(base)
end

-- ---- workers -------------------------------------------------------------------

local function drop_worker(base, wid)
  local w = hash_of(redis.call('HGETALL', base .. ':worker:' .. wid))
  redis.call('ZREM', base .. ':workers', wid)
  if w.slots then redis.call('HINCRBY', base .. ':meta', 'slots', -tonumber(w.slots)) end
  if w.types then
    for _, t in ipairs(cjson.decode(w.types)) do
      if redis.call('HINCRBY', base .. ':types', t, -1) <= 0 then
        redis.call('HDEL', base .. ':types', t)
      end
    end
  end
  redis.call('DEL', base .. ':worker:' .. wid)
end

-- Puts a worker's leased commands back at the FRONT of their lanes (oldest
-- first), counting a lost lease on each when `count_lost`; a command that
-- has lost max_lost leases becomes a dead letter. Returns requeued, dead.
local function requeue_leased(base, by_id, wid, count_lost, now)
  local ids = redis.call('SMEMBERS', base .. ':leased:' .. wid)
  local max_lost = meta_number(base, 'max_lost', DEFAULT_MAX_LOST)
  local back = {}
  local requeued, dead = 0, 0
  for _, id in ipairs(ids) do
    local cmd = hash_of(redis.call('HGETALL', cmd_key(base, id)))
    local lane = cmd.lane and by_id[cmd.lane]
    if lane and cmd.state == 'running' and cmd.worker == wid then
      release(lane) -- the leased set goes as a whole below
      local lost = (tonumber(cmd.lost) or 0) + (count_lost and 1 or 0)
      if lost >= max_lost then
        count(lane, 'failed')
        local text = 'lost its worker ' .. lost .. ' times (last: ' .. wid .. ')'
        emit(base, 'queue.command.failed', { lane_id = lane.id, command_id = id, error = text })
        dead_letter(base, lane, cmd, id, text, (tonumber(cmd.failures) or 0) + 1, now)
        deliver(base, cmd.reply, { id = id, status = 'error', error = text })
        redis.call('DEL', cmd_key(base, id))
        dead = dead + 1
      else
        redis.call('HSET', cmd_key(base, id), 'state', 'pending', 'lost', lost, 'worker', '',
                   'lease', '')
        back[#back + 1] = { id = id, lane = lane, seq = tonumber(cmd.seq) or 0 }
        count(lane, 'requeued')
        emit(base, 'queue.command.requeued',
             { lane_id = lane.id, command_id = id, worker_id = wid, lost = lost })
        requeued = requeued + 1
      end
    end
  end
  -- Newest first onto the front, so the oldest ends up at the very front.
  table.sort(back, function(a, b) return a.seq > b.seq end)
  for _, entry in ipairs(back) do
    redis.call('LPUSH', queue_key(base, entry.lane.id), entry.id)
    entry.lane.pending = entry.lane.pending + 1
    reread(entry.lane)
  end
  redis.call('DEL', base .. ':leased:' .. wid)
  return requeued, dead
end

-- Reaps every worker whose lease expired before `now`; returns how many.
-- Grace: an outage reaps nobody. When the caller is a heartbeat over half
-- its lease late (`cut_off`: it could not reach Redis) and Redis heard no
-- heartbeat or join at all for over half a worker's lease (meta `seen`: the
-- last one), Redis was down, restarted or cut off from every worker: that
-- worker's lease starts afresh from now (it had no way to renew it, and
-- needs the time to reconnect); one that stays away is reaped when it runs
-- out.
local function reap(base, by_id, lanes, now, cut_off)
  local seen = meta_number(base, 'seen', now)
  redis.call('HSET', base .. ':meta', 'seen', now)
  if cut_off then
    local all = redis.call('ZRANGE', base .. ':workers', 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      local wid, expiry = all[i], tonumber(all[i + 1])
      local lease = tonumber(redis.call('HGET', base .. ':worker:' .. wid, 'lease')) or 0
      if now - seen > lease / 2 and expiry < now + lease then
        redis.call('ZADD', base .. ':workers', 'XX', now + lease, wid)
      end
    end
  end
  local expired = redis.call('ZRANGEBYSCORE', base .. ':workers', '-inf', '(' .. now)
  local total = 0
  for _, wid in ipairs(expired) do
    local requeued, dead = requeue_leased(base, by_id, wid, true, now)
    drop_worker(base, wid)
    redis.call('DEL', base .. ':wake:' .. wid)
    emit(base, 'queue.worker.lost', { worker_id = wid, requeued = requeued, dead_lettered = dead })
    total = total + requeued
  end
  save_lanes(base, lanes)
  if total > 0 then wake(base, total, nil) end
  return #expired
end

-- ---- functions -----------------------------------------------------------------

local function f_version()
  return VERSION
end

-- register_lanes(base; now, options JSON, config JSON, config JSON, ...)
-- config: {id, priority, min, max, timeout_ms?, retry?{max_retries, initial_ms, max_ms,
-- multiplier}, rate?{max, window_ms}, boost?{deadline_ms, windows:[[before_ms, amount]...]}},
-- stored as the text given. A lane already stored must match field for field; nothing
-- is written unless every lane fits. options: {events_max, dead_max, max_lost}, each
-- set by the first queue that gives it. Returns how many lanes were new.
local FIELDS = { 'priority', 'min', 'max', 'timeout_ms' }
local function describe(value)
  if value == nil then return 'none' end
  if type(value) == 'table' then return cjson.encode(value) end
  return tostring(value)
end
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= 'table' then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k, _ in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function f_register_lanes(keys, args)
  local base = keys[1]
  local now = now_of(args[1])
  local options = cjson.decode(args[2])
  local fresh = {}
  for i = 3, #args do
    local cfg = normalized(cjson.decode(args[i]))
    cfg.text = args[i]
    local stored = redis.call('HGET', base .. ':config', cfg.id)
    if stored then
      local old = normalized(cjson.decode(stored))
      for _, field in ipairs(FIELDS) do
        if old[field] ~= cfg[field] then
          return fail('A3S_CONFLICT', 'lane ' .. cjson.encode(cfg.id) .. ': ' .. field .. ' is '
                      .. describe(old[field]) .. ' in Redis, ' .. describe(cfg[field]) .. ' here')
        end
      end
      for _, field in ipairs({ 'retry', 'rate', 'boost' }) do
        if not same(old[field], cfg[field]) then
          return fail('A3S_CONFLICT', 'lane ' .. cjson.encode(cfg.id) .. ': ' .. field .. ' is '
                      .. describe(old[field]) .. ' in Redis, ' .. describe(cfg[field]) .. ' here')
        end
      end
    else
      fresh[#fresh + 1] = cfg
    end
  end
  for _, cfg in ipairs(fresh) do
    redis.call('HSET', base .. ':config', cfg.id, cfg.text)
    redis.call('RPUSH', base .. ':lanes', cfg.id)
    local lane = { active = 0, paused = false, tokens = 0, refilled = 0, throttled = 0,
                   dispatched = 0, completed = 0 }
    if cfg.rate then lane.tokens, lane.refilled = cfg.rate.max, now end
    redis.call('HSET', base .. ':sched', cfg.id, packed(lane))
    local counters = {}
    for _, name in ipairs(COUNTERS) do
      counters[#counters + 1] = name
      counters[#counters + 1] = 0
    end
    redis.call('HSET', lane_key(base, cfg.id), unpack(counters))
  end
  for _, name in ipairs({ 'events_max', 'dead_max', 'max_lost' }) do
    if options[name] then redis.call('HSETNX', base .. ':meta', name, options[name]) end
  end
  return #fresh
end

-- join(base; now, worker id, slots, types JSON, lease ms, info, direct "1"|"0")
--   direct: the worker reads claimed commands' records (JSON) from its wake
--   list besides tokens, so a submit may lease it commands at once.
local function f_join(keys, args)
  local base = keys[1]
  local now = now_of(args[1])
  local wid, slots, types, lease = args[2], tonumber(args[3]), args[4], tonumber(args[5])
  if not slots or slots < 1 then return fail('A3S_ARG', 'slots must be >= 1') end
  local lanes, by_id = load_lanes(base)
  -- The first call after an outage may be this join: with the same grace
  -- as a late heartbeat (a worker Redis heard nothing from while Redis
  -- heard nobody gets its lease afresh), it reaps only the truly dead.
  reap(base, by_id, lanes, now, true)
  -- Joining again (a heartbeat found it reaped, or its types changed): what it
  -- still holds stays leased to it.
  if redis.call('EXISTS', base .. ':worker:' .. wid) == 1 then drop_worker(base, wid) end
  -- The live slots may fall below the lanes' reservations (workers come
  -- and go): then, as in the C engine, only lanes below their own min start
  -- commands until slots free up; stats() says so for each waiting lane.
  local total = meta_number(base, 'slots', 0) + slots
  redis.call('ZADD', base .. ':workers', now + lease, wid)
  redis.call('HSET', base .. ':worker:' .. wid, 'slots', slots, 'types', types, 'joined', now,
             'beat', now, 'lease', lease, 'info', args[6] or '',
             'direct', args[7] == '1' and 1 or 0)
  redis.call('HINCRBY', base .. ':meta', 'slots', slots)
  for _, t in ipairs(cjson.decode(types)) do redis.call('HINCRBY', base .. ':types', t, 1) end
  emit(base, 'queue.worker.joined', { worker_id = wid, slots = slots })
  return total
end

-- leave(base; now, worker id): a worker that stops; what it holds goes back
-- to the front of its lanes (no lost lease counted).
local function f_leave(keys, args)
  local base = keys[1]
  local now = now_of(args[1])
  local wid = args[2]
  if redis.call('EXISTS', base .. ':worker:' .. wid) == 0 then return 0 end
  local lanes, by_id = load_lanes(base)
  local requeued = requeue_leased(base, by_id, wid, false, now)
  save_lanes(base, lanes)
  drop_worker(base, wid)
  redis.call('DEL', base .. ':wake:' .. wid)
  emit(base, 'queue.worker.left', { worker_id = wid, requeued = requeued })
  if requeued > 0 then wake(base, requeued, nil) end
  return 1
end

-- heartbeat(base; now, worker id, lease ms) -> {known 1|0, workers reaped}
local function f_heartbeat(keys, args)
  local base = keys[1]
  local now = now_of(args[1])
  local wid, lease = args[2], tonumber(args[3])
  local known, cut_off = 0, false
  if redis.call('ZSCORE', base .. ':workers', wid) then
    local beat = tonumber(redis.call('HGET', base .. ':worker:' .. wid, 'beat')) or now
    cut_off = now - beat > lease / 2
    redis.call('ZADD', base .. ':workers', 'XX', now + lease, wid)
    redis.call('HSET', base .. ':worker:' .. wid, 'beat', now, 'lease', lease)
    known = 1
  end
  local lanes, by_id = load_lanes(base)
  return { known, reap(base, by_id, lanes, now, cut_off) }
end

-- Leases up to `free` commands to worker `wid`, into slots of its that are
-- free now: picked as the engine picks, among the types it can run; each
-- one's record (what a claim hands out) is appended to `claimed`.
local function lease_to(base, lanes, wid, free, now, can_run, claimed)
  local slots = meta_number(base, 'slots', 0)
  local first = #claimed
  local lease_base = nil
  while #claimed - first < free do
    local lane = pick(base, lanes, slots, now, can_run, free - (#claimed - first))
    if not lane then break end
    if lease_base == nil then
      lease_base = wid .. '#' .. redis.call('HINCRBY', base .. ':meta', 'lease_seq', 1) .. '.'
    end
    local fr = take(lane)
    local id = fr.id
    lane.active = lane.active + 1
    lane.dirty = true
    count(lane, 'dispatched')
    local lease = lease_base .. (#claimed - first + 1)
    redis.call('HSET', cmd_key(base, id), 'state', 'running', 'worker', wid, 'lease', lease,
               'started', now, 'starts', fr.starts + 1)
    emit(base, 'queue.command.started',
         { lane_id = lane.id, command_id = id, command_type = fr.type, worker_id = wid })
    claimed[#claimed + 1] = {
      id = id, lane = lane.id, type = fr.type, payload = fr.payload, lease = lease,
      enq = ms(fr.enq), seq = fr.seq, failures = fr.failures,
      timeout_ms = lane.cfg.timeout_ms,
    }
  end
  trim_taken(base, lanes)
  if #claimed > first then
    local ids = {}
    for i = first + 1, #claimed do ids[#ids + 1] = claimed[i].id end
    redis.call('SADD', base .. ':leased:' .. wid, unpack(ids))
  end
end

-- Queues commands given as flat quads (id, lane, type, payload JSON text)
-- from args[first] on, all or none: every lane must exist and no id be in
-- use before anything is written. One seq range, one RPUSH per lane, one
-- counter write per lane and one wake-up for the lot.
local function submit_all(base, now, args, first, reply)
  local n = (#args - first + 1) / 4
  if n < 1 or n ~= math.floor(n) then
    return fail('A3S_ARG', 'submit takes id, lane, type, payload per command')
  end
  local known_lane = {}
  for i = first, #args, 4 do
    local id, lane = args[i], args[i + 1]
    if known_lane[lane] == nil then
      if redis.call('HEXISTS', base .. ':config', lane) == 0 then
        return fail('A3S_NO_LANE', lane)
      end
      known_lane[lane] = true
    end
    if redis.call('EXISTS', cmd_key(base, id)) == 1 then
      return fail('A3S_DUPLICATE', 'command id ' .. id .. ' is already queued or running')
    end
  end
  local last = redis.call('HINCRBY', base .. ':meta', 'seq', n)
  local seq = last - n
  local by_lane, order, types, typed = {}, {}, {}, {}
  for i = first, #args, 4 do
    local id, lane, ctype, payload = args[i], args[i + 1], args[i + 2], args[i + 3]
    seq = seq + 1
    redis.call('HSET', cmd_key(base, id), 'lane', lane, 'type', ctype, 'payload', payload,
               'seq', seq, 'enq', now, 'state', 'pending', 'reply', reply, 'failures', 0,
               'lost', 0, 'starts', 0)
    local ids = by_lane[lane]
    if ids == nil then
      ids = {}
      by_lane[lane] = ids
      order[#order + 1] = lane
    end
    ids[#ids + 1] = id
    if not typed[ctype] then
      typed[ctype] = true
      types[#types + 1] = ctype
    end
    emit(base, 'queue.command.submitted', { lane_id = lane, command_id = id, command_type = ctype })
  end
  for _, lane in ipairs(order) do
    local ids = by_lane[lane]
    for at = 1, #ids, 1000 do -- unpack stays within Lua's stack
      redis.call('RPUSH', queue_key(base, lane), unpack(ids, at, math.min(at + 999, #ids)))
    end
    redis.call('HINCRBY', lane_key(base, lane), 'submitted', #ids)
  end
  -- An idle worker that joined with `direct` gets its commands leased here
  -- and their records in its wake list (its blocking read returns them, no
  -- claim round trip before they start); the others get tokens.
  local lanes = nil
  local function direct(wid, k, worker_types)
    if lanes == nil then lanes = load_lanes(base) end
    local records = {}
    lease_to(base, lanes, wid, k, now, type_filter(base, worker_types), records)
    if #records > 0 then
      local texts = {}
      for i, record in ipairs(records) do texts[i] = cjson.encode(record) end
      redis.call('RPUSH', base .. ':wake:' .. wid, unpack(texts))
    end
    return #records
  end
  wake(base, n, types, nil, direct)
  if lanes ~= nil then save_lanes(base, lanes) end
  return n
end

-- submit(base; now, id, lane, type, payload JSON text, reply-to client) -> id
local function f_submit(keys, args)
  local base = keys[1]
  local now = now_of(args[1])
  local quad = { args[2], args[3], args[4], args[5] }
  local done = submit_all(base, now, quad, 1, args[6] or '')
  if type(done) == 'table' and done.err then return done end
  return args[2]
end

-- submit_many(base; now, reply-to client, id, lane, type, payload, id, lane, ...) -> how
-- many: all or none (an unknown lane or an id in use fails the whole call).
local function f_submit_many(keys, args)
  local base = keys[1]
  return submit_all(base, now_of(args[1]), args, 3, args[2] or '')
end

-- take_results(base; now, client, max) -> up to max results of a client, moved
-- to <results list>:taken (emptied first: the caller handled what was there).
local function f_take_results(keys, args)
  local base = keys[1]
  local key = base .. ':results:' .. args[2]
  local taken = key .. ':taken'
  local max = tonumber(args[3]) or 100
  redis.call('DEL', taken)
  local items = redis.call('LRANGE', key, 0, max - 1)
  if #items > 0 then
    redis.call('LTRIM', key, #items, -1)
    for at = 1, #items, 1000 do
      redis.call('RPUSH', taken, unpack(items, at, math.min(at + 999, #items)))
    end
    redis.call('PEXPIRE', taken, RESULT_TTL_MS)
  end
  return items
end

-- claim(base; now, worker id, free, acks JSON) -> JSON
--   acks: [{id, lease, status "ok"|"error"|"timeout", result (JSON text), error}]
--   reply: {known, claimed: [{id, lane, type, payload, lease, enq, seq, failures,
--   timeout_ms}], rejected: [ids], next_due: ms string or ""}
local function f_claim(keys, args)
  local base = keys[1]
  local now = now_of(args[1])
  local wid, free = args[2], tonumber(args[3]) or 0
  local acks = cjson.decode(args[4] or '[]')
  local lanes, by_id = load_lanes(base)
  local acked = #acks
  local rejected = {}
  if acked > 0 then rejected = apply_acks(base, by_id, wid, acks, now) end
  local wk = base .. ':worker:' .. wid
  -- A live worker has its hash (join writes it with its place in
  -- <base>:workers; a reap drops both).
  local w = redis.call('HMGET', wk, 'slots', 'woken', 'types')
  local known = w[1] ~= false
  local promoted, next_due = promote_due(base, by_id, now)
  local released = 0
  for _, lane in ipairs(lanes) do
    if lane.throttled ~= 0 and lane.throttled <= now then
      lane.throttled = 0
      lane.dirty = true
      released = released + 1
    end
  end
  local claimed = {}
  local room_after, can_run = 0, nil
  if known then
    local room = (tonumber(w[1]) or 0) - redis.call('SCARD', base .. ':leased:' .. wid)
    -- This claim serves the slots a token woke (up to `free` of them).
    local woken = tonumber(w[2]) or 0
    if woken > 0 then
      woken = woken - free
      if woken < 0 then woken = 0 end
      redis.call('HSET', wk, 'woken', woken)
    end
    if free > room then free = room end
    if free > 0 then
      can_run = type_filter(base, w[3] or nil)
      lease_to(base, lanes, wid, free, now, can_run, claimed)
    end
    room_after = room - #claimed
  end
  local pending = 0
  save_lanes(base, lanes)
  for _, lane in ipairs(lanes) do
    pending = pending + lane.pending
    if lane.throttled ~= 0 and lane.pending > 0 and not lane.paused
        and (next_due == nil or lane.throttled < next_due) then
      next_due = lane.throttled
    end
  end
  -- Slots freed by acks, promoted retries and released rate limits may let
  -- other idle workers start something now: wake those that can run the
  -- runnable lanes' front commands. Not needed when this worker still has
  -- room and could run every such front command (it just took what it
  -- could). A call that changed none of these wakes nobody, so wake-ups
  -- cannot chase each other. Nor does one when no worker has a free slot
  -- (the common case under load): then the fronts are not even read.
  local idle = nil
  if (acked - #rejected) + promoted + released > 0 and pending > 0 then
    idle = idle_workers(base)
  end
  if idle and #idle > 0 then
    local n, types, others = 0, {}, room_after <= 0
    for _, lane in ipairs(lanes) do
      if runnable(lane) then
        local fr = front(base, lane)
        if fr then
          local room = lane.cfg.max - lane.active
          if room > lane.pending then room = lane.pending end
          n = n + room
          types[#types + 1] = fr.type
          if not others and (can_run == nil or not can_run(fr.type)) then others = true end
        end
      end
    end
    if others then wake(base, n, types, idle) end
  end
  return cjson.encode({
    known = known, claimed = claimed, rejected = rejected,
    next_due = next_due and ms(next_due) or '', now = ms(now),
  })
end

-- cancel(base; now, id) -> 1 if the command was pending or delayed (now gone), else 0
local function f_cancel(keys, args)
  local base = keys[1]
  now_of(args[1])
  local id = args[2]
  local ck = cmd_key(base, id)
  local c = redis.call('HMGET', ck, 'state', 'lane', 'reply')
  local state, lane = c[1], c[2]
  if state == 'pending' then
    if redis.call('LREM', queue_key(base, lane), 1, id) == 0 then return 0 end
  elseif state == 'delayed' then
    if redis.call('ZREM', base .. ':delayed', id) == 0 then return 0 end
    redis.call('HINCRBY', lane_key(base, lane), 'delayed', -1)
  else
    return 0
  end
  redis.call('HINCRBY', lane_key(base, lane), 'cancelled', 1)
  emit(base, 'queue.command.cancelled', { lane_id = lane, command_id = id })
  deliver(base, c[3], { id = id, status = 'cancelled' })
  redis.call('DEL', ck)
  return 1
end

local function set_paused(keys, args, paused)
  local base = keys[1]
  now_of(args[1])
  local lane = args[2]
  if redis.call('HEXISTS', base .. ':config', lane) == 0 then return fail('A3S_NO_LANE', lane) end
  local state = { id = lane }
  read_state(base, state, redis.call('HGET', base .. ':sched', lane) or nil)
  state.paused = paused == 1
  redis.call('HSET', base .. ':sched', lane, packed(state))
  if paused == 0 then
    local head = redis.call('LINDEX', queue_key(base, lane), 0)
    if head then
      wake(base, redis.call('LLEN', queue_key(base, lane)),
           { redis.call('HGET', cmd_key(base, head), 'type') })
    end
  end
  return 1
end

local function f_pause(keys, args) return set_paused(keys, args, 1) end
local function f_resume(keys, args) return set_paused(keys, args, 0) end


-- stats(base; now) -> JSON: lanes (with why a lane with pending work waits),
-- workers, totals. Read-only.
local function f_stats(keys, args)
  local base = keys[1]
  local now = now_of(args[1])
  local lanes = load_lanes(base)
  local slots = meta_number(base, 'slots', 0)
  local workers = {}
  local live = redis.call('ZRANGE', base .. ':workers', 0, -1, 'WITHSCORES')
  local handled = {}
  for i = 1, #live, 2 do
    local wid = live[i]
    local w = hash_of(redis.call('HGETALL', base .. ':worker:' .. wid))
    local active = redis.call('SCARD', base .. ':leased:' .. wid)
    local free = (tonumber(w.slots) or 0) - active
    for _, t in ipairs(cjson.decode(w.types or '[]')) do
      handled[t] = (handled[t] or 0) + free
    end
    workers[#workers + 1] = {
      worker_id = wid, slots = tonumber(w.slots) or 0, active = active,
      types = w.types or '[]', info = w.info or '',
      lease_left_ms = ms(tonumber(live[i + 1]) - now),
      beat_age_ms = ms(now - (tonumber(w.beat) or now)),
    }
  end
  local total_active, unfilled = 0, 0
  for _, lane in ipairs(lanes) do
    total_active = total_active + lane.active
    if lane.active < lane.cfg.min then unfilled = unfilled + lane.cfg.min - lane.active end
  end
  local out = {}
  for _, lane in ipairs(lanes) do
    local counters = redis.call('HMGET', lane_key(base, lane.id), unpack(COUNTERS))
    local s = {
      lane_id = lane.id, priority = lane.cfg.priority, min = lane.cfg.min, max = lane.cfg.max,
      pending = lane.pending, active = lane.active, paused = lane.paused,
      throttled = lane.throttled ~= 0 and lane.throttled > now, waiting = '',
    }
    for i, name in ipairs(COUNTERS) do
      if HOT_COUNTERS[name] then s[name] = lane[name] else s[name] = tonumber(counters[i]) or 0 end
    end
    if lane.pending > 0 then
      local fr = front(base, lane)
      if lane.paused then
        s.waiting = 'paused'
      elseif lane.active >= lane.cfg.max then
        s.waiting = 'at max_concurrency'
      elseif s.throttled then
        s.waiting = 'rate limited for ' .. ms(lane.throttled - now) .. ' ms'
      elseif slots == 0 then
        s.waiting = 'no live worker'
      elseif total_active >= slots then
        s.waiting = 'every worker slot is busy'
      elseif not (slots - total_active > unfilled) and lane.active >= lane.cfg.min then
        s.waiting = 'the free slots are reserved for other lanes\' min_concurrency'
      elseif fr and (tonumber(redis.call('HGET', base .. ':types', fr.type)) or 0) > 0
          and (handled[fr.type] or 0) <= 0 then
        s.waiting = 'its front command (type ' .. fr.type .. ') waits for a free worker '
            .. 'that handles it'
      end
    end
    out[#out + 1] = s
  end
  return cjson.encode({
    now = ms(now), slots = slots, lanes = out, workers = workers,
    delayed = redis.call('ZCARD', base .. ':delayed'),
    dead_letters = redis.call('LLEN', base .. ':dead'),
    late_acks = meta_number(base, 'late_acks', 0),
    version = VERSION,
  })
end

-- dead_letters(base; now, start, stop) -> the letters (JSON strings), oldest first
local function f_dead_letters(keys, args)
  return redis.call('LRANGE', keys[1] .. ':dead', tonumber(args[2]) or 0, tonumber(args[3]) or -1)
end

-- Every function: a fresh call context, and the results and events it
-- produced written at its end (one RPUSH per client, one XADD).
local function entry(fn)
  return function(keys, args)
    call_ctx = { base = keys[1] }
    local reply = fn(keys, args)
    if keys[1] then
      flush_results(keys[1])
      flush_events(keys[1])
    end
    return reply
  end
end

redis.register_function { function_name = 'a3s_version', callback = entry(f_version),
                          flags = { 'no-writes' } }
redis.register_function('a3s_register_lanes', entry(f_register_lanes))
redis.register_function('a3s_join', entry(f_join))
redis.register_function('a3s_leave', entry(f_leave))
redis.register_function('a3s_heartbeat', entry(f_heartbeat))
redis.register_function('a3s_submit', entry(f_submit))
redis.register_function('a3s_submit_many', entry(f_submit_many))
redis.register_function('a3s_take_results', entry(f_take_results))
redis.register_function('a3s_claim', entry(f_claim))
redis.register_function('a3s_cancel', entry(f_cancel))
redis.register_function('a3s_pause', entry(f_pause))
redis.register_function('a3s_resume', entry(f_resume))
redis.register_function { function_name = 'a3s_stats', callback = entry(f_stats),
                          flags = { 'no-writes' } }
redis.register_function { function_name = 'a3s_dead_letters', callback = entry(f_dead_letters),
                          flags = { 'no-writes' } }
