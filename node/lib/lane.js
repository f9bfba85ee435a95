'use strict';
// The Lane class: the queue itself.
//
// How a command flows:
//   submit    — the job waits in its lane's JobRing (jobs.js) under a fresh
//               ticket, and the ticket in the exchange area for the engine;
//               a pump is queued as a microtask, so a burst of submits is
//               scheduled as one batch;
//   pump      — one call into the engine (`step`, src/addon.cc) hands it the
//               buffered submits and completions and takes back up to a
//               batch of tickets to run; each job starts at once: its handler
//               runs; a Promise it returns completes the job when it settles;
//   complete  — buffers the freed slot and queues the pump, then resolves the
//               caller's promise: the completions of one microtask round
//               reach the engine in one call, which hands each freed slot to
//               the next ticket.
// So a burst costs a few calls across N-API per batch, not three per job.
// Whatever reads or claims from the engine outside the pump (stats, cancel,
// the synchronous submit) first hands it what is buffered (`_sync`).
// The engine makes every scheduling decision (priority, FIFO, max
// concurrency, min reservations, the worker budget). There are no threads
// and no timers: work starts from submits and completions only. Events are
// buffered and delivered to subscribers from a setImmediate batch, so a
// subscriber never runs inside a submit or on the dispatch path (see
// events.js: `this._hub`).

const { randomUUID } = require('node:crypto');
const { isAsyncFunction } = require('node:util').types;

const { Engine, C } = require('./binding');
const {
  LaneError, configError, laneNotFound, shuttingDown, checkRc, describeError, describeMs, typeName,
} = require('./errors');
const { quote, checkOptions, resolveOptions } = require('./config');
const {
  MODE_JSON, MODE_VALUE, MODE_FN, Job, JobRing, functionType, parsePayloadJson, copyPayload, checkCommandType,
  checkSubmitOptions, isThenable, whenSettled,
} = require('./jobs');
const { EVENTS, EventHub } = require('./events');
const { checkDuration, setLongTimeout } = require('./timers');
const { RedisQueue } = require('./redis/queue');
const { loadRedis, redact } = require('./redis/connection');
const { runMany } = require('./redis/many');

// After this many dispatches in a row without the event loop turning, the
// pump yields (setImmediate) so timers and I/O keep running during a flood.
const YIELD_EVERY = 1024;

// The exchange area with the addon (Engine#step): up to IO_CAP completions
// and IO_CAP submits go to the engine in one call, and up to IO_CAP
// dispatches come back from it. See src/addon.cc for the layout.
const IO_CAP = 1024;
const IO_COMPLETE = 1;
const IO_SUBMIT = 1 + IO_CAP;
const IO_DISPATCH = 1 + 3 * IO_CAP;

// Schedules the pump after the current task, as queueMicrotask would, but
// without the async resource Node's queueMicrotask makes each time.
const resolved = Promise.resolve();

// The low 12 bits of a ticket as 3 hex digits, shared by every queue: a
// command id is one concatenation of a cached prefix and one of these.
const HEX3 = Array.from({ length: 4096 }, (_, i) => i.toString(16).padStart(3, '0'));

function noop() {}

// new Promise(captureResolvers) leaves its resolving functions here, to be
// taken at once: no closure and no context per promise.
let capturedResolve = null;
let capturedReject = null;
function captureResolvers(resolve, reject) {
  capturedResolve = resolve;
  capturedReject = reject;
}

class Lane {
  /**
   * `new Lane()` has the six default lanes; `new Lane({ lanes, maxWorkers,
   * eventCapacity })` takes lane configs and options (see withLanes).
   */
  constructor(options) {
    const { lanes, workers, capacity, redis } = resolveOptions(options);

    // Redis mode: the queue lives in Redis, shared by every process naming
    // the same URL and queue (lib/redis/queue.js); the methods below hand
    // over to it. The in-process engine is not used.
    this._redis = null;
    if (redis !== null) {
      const ids = new Set();
      for (const config of lanes) {
        if (ids.has(config.laneId)) throw configError(`duplicate lane id ${quote(config.laneId)}`);
        ids.add(config.laneId);
      }
      this._maxWorkers = workers;
      this._laneList = lanes.map((config) => Object.freeze({ id: config.laneId, ...config }));
      this._lanes = new Map(this._laneList.map((lane) => [lane.id, lane]));
      this._handlers = new Map();
      this._hub = new EventHub(capacity);
      loadRedis(); // fails here, clearly, when the redis package is missing
      this._redis = new RedisQueue(this, {
        url: redis.url, queue: redis.queue, lanes, slots: workers, leaseMs: redis.leaseMs,
        options: { events_max: 10_000, max_lost: 5 },
      });
      return;
    }

    this._engine = new Engine(workers);
    this._maxWorkers = workers;
    this._lanes = new Map();
    this._laneList = [];
    for (const config of lanes) {
      if (this._lanes.has(config.laneId)) {
        throw configError(`duplicate lane id ${quote(config.laneId)}`);
      }
      const index = this._engine.addLane(config.priority, config.minConcurrency, config.maxConcurrency);
      if (index < 0) {
        throw configError(
          `invalid lane ${quote(config.laneId)}: priority=${config.priority}, ` +
            `min=${config.minConcurrency}, max=${config.maxConcurrency} (engine code ${index})`,
        );
      }
      // Not frozen: with the record frozen, every full GC that collected the
      // last records of a map deoptimized the dispatch path ("weak objects":
      // _pump, _start, JobRing#take, Job), recompiled inside the next burst.
      const lane = { id: config.laneId, index, queue: this, ...config };
      this._lanes.set(config.laneId, lane);
      this._laneList.push(lane);
    }

    this._handlers = new Map();
    // Each lane's waiting jobs (a JobRing per lane index), and how many jobs
    // are waiting or running.
    this._waiting = this._laneList.map((lane) => new JobRing(lane));
    // ticket -> { signal, onAbort } for waiting jobs submitted with a signal.
    this._signals = new Map();
    this._lastLane = null; // the lane of the last submit
    this._live = 0;
    this._ticket = 0;
    // Submits and completions wait here, in order, until the next step():
    // the pump's, or a _sync() before anything reads or claims from the engine.
    this._io = new Float64Array(1 + 5 * IO_CAP);
    this._engine.attach(this._io);
    this._nSubmit = 0;
    this._nComplete = 0;
    // A random, UUID-shaped prefix per queue plus the ticket in hex: ids are
    // unique across processes without a randomUUID() per command.
    this._idPrefix = randomUUID().slice(0, 24);
    // The prefix plus the ticket's first 9 hex digits, for tickets of the
    // block `_idBlock` (ticket >>> 12; tickets stay below 2^53).
    this._idBlock = -1;
    this._idBlockPrefix = '';

    this._started = false;
    this._shuttingDown = false;
    this._stopped = false;

    this._pumping = false;
    this._pumpQueued = false;
    // True while the pump yields to the event loop, and for good in manual
    // dispatch (scenario replays): completions then only free their slot.
    this._yielding = false;
    this._manual = false;
    this._sinceYield = 0;
    this._pumpTask = () => {
      this._pumpQueued = false;
      this._pump();
    };
    this._resumeTask = () => {
      if (this._manual) return;
      this._yielding = false;
      this._sinceYield = 0;
      this._pump();
    };

    this._hub = new EventHub(capacity);

    this._idleWaiters = [];
  }

  /** A queue with the given lanes instead of the defaults. */
  static withLanes(configs, options) {
    const rest = checkOptions(options);
    if ('lanes' in rest) throw configError('pass the lanes as the first argument of withLanes()');
    return new Lane({ ...rest, lanes: configs });
  }

  // ---- handlers and lifecycle ---------------------------------------------------

  /**
   * Runs `handler(payload, context)` for commands of this type. It may
   * return a value or a Promise; what it returns is the command's result and
   * what it throws (or rejects with) fails that command alone. A type with no
   * handler echoes its payload, as the original SDK did.
   */
  registerHandler(commandType, handler) {
    checkCommandType(commandType);
    if (typeof handler !== 'function') {
      throw new TypeError(`handler for '${commandType}' must be a function, got ${typeName(handler)}`);
    }
    this._handlers.set(commandType, handler);
    // A Redis worker registers its handled types: at once, not at the next heartbeat.
    if (this._redis !== null && this._redis.worker !== null && this._redis.started) this._redis.worker.heartbeat();
    return this;
  }

  unregisterHandler(commandType) {
    return this._handlers.delete(commandType);
  }

  /**
   * Starts dispatching. Commands queued before start() run from now on.
   * Redis mode: joins the queue as a worker (`{ worker: false }`: as a
   * producer only; `{ keepAlive: true }`: the worker keeps the process
   * running until it leaves). Synchronous: connected, lanes registered and
   * joined when it returns; an unreachable Redis throws here (within 3 s).
   */
  start(options) {
    if (this._redis !== null) {
      this._redis.start(options);
      return;
    }
    if (this._stopped) throw shuttingDown();
    if (this._started) return;
    this._started = true;
    this._schedulePump();
  }

  get isStarted() {
    return this._redis !== null ? this._redis.started : this._started;
  }

  get isShuttingDown() {
    return this._redis !== null ? this._redis.shuttingDown : this._shuttingDown;
  }

  /** Redis mode: `{ url, queue }` (the URL without its password); null in process. */
  get redis() {
    return this._redis !== null ? { url: redact(this._redis.url), queue: this._redis.queueName } : null;
  }

  /** Redis mode: this process's worker id in the queue (null before start() or as a producer). */
  get workerId() {
    return this._redis !== null && this._redis.worker !== null ? this._redis.worker.id : null;
  }

  get maxWorkers() {
    return this._maxWorkers;
  }

  get laneIds() {
    return this._laneList.map((lane) => lane.id);
  }

  /** Events dropped because more than `eventCapacity` waited for delivery. */
  get droppedEvents() {
    return this._hub.dropped;
  }

  /** Stops intake: later submits fail; commands already queued still run. */
  shutdown() {
    if (this._redis !== null) {
      this._redis.shutdown();
      return;
    }
    if (this._shuttingDown) return;
    this._shuttingDown = true;
    this._hub.emit(EVENTS.SHUTDOWN_STARTED, null);
  }

  /**
   * Resolves once nothing is pending or running (and the events emitted so
   * far are delivered); rejects with ERR_LANE_TIMEOUT after `timeoutMs`
   * (any non-negative number; undefined, null or Infinity: no limit).
   * After shutdown() it also emits queue.shutdown.complete and ends every
   * subscription.
   */
  drain(timeoutMs) {
    if (this._redis !== null) return this._redis.drain(timeoutMs);
    let limit;
    try {
      limit = checkDuration(timeoutMs, 'timeoutMs', 'drain(timeoutMs)');
    } catch (error) {
      return Promise.reject(error);
    }
    if (this._live === 0) return this._afterIdle();
    if (!this._started) {
      return Promise.reject(new LaneError(
        'ERR_LANE_NOT_STARTED',
        `Queue is not started: call start() before drain() (${this._live} commands are ` +
          'queued and nothing can run them)',
      ));
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: null };
      if (limit !== undefined) {
        // A chain of timers past setTimeout's largest delay: it waits as asked.
        waiter.timer = setLongTimeout(() => {
          this._idleWaiters = this._idleWaiters.filter((w) => w !== waiter);
          reject(new LaneError('ERR_LANE_TIMEOUT', this._drainTimeoutMessage(limit)));
        }, limit);
      }
      this._idleWaiters.push(waiter);
    });
  }

  // ---- submit ----------------------------------------------------------------------

  /**
   * The original SDK's synchronous submit: runs the command now and returns
   * its result as a JSON string. It never blocks the event loop, so it only
   * works when the command can start at once and its handler is synchronous
   * (or there is none: the payload is echoed). Otherwise it throws
   * ERR_LANE_WOULD_BLOCK — use submitAsync().
   */
  submit(laneId, commandType, payloadJson) {
    if (this._redis !== null) {
      if (typeof laneId !== 'string') throw new TypeError(`laneId must be a string, got ${typeName(laneId)}`);
      if (this._redis.shuttingDown) throw shuttingDown();
      checkCommandType(commandType);
      return this._redis.submitSync(laneId, commandType, parsePayloadJson(payloadJson));
    }
    const lane = this._lane(laneId);
    if (this._shuttingDown) throw shuttingDown();
    checkCommandType(commandType);
    const payload = parsePayloadJson(payloadJson);
    if (!this._started) {
      throw new LaneError(
        'ERR_LANE_NOT_STARTED',
        'Queue is not started: call start() before submit() (submitAsync() queues commands ' +
          'before start and runs them once started)',
      );
    }
    const handler = this._handlers.get(commandType);
    if (handler !== undefined && isAsyncFunction(handler)) {
      throw new LaneError(
        'ERR_LANE_WOULD_BLOCK',
        `the handler for '${commandType}' is async: submit() is synchronous and cannot wait ` +
          'for it without blocking the event loop; use submitAsync()',
      );
    }
    // Work queued in this tick goes first, as it would a moment later: the
    // claim below then sees the queue as it really is.
    if (this._pumpQueued) this._pump();
    this._sync();
    const ticket = ++this._ticket;
    // Claim a slot only if the command can start at once: a refused submit
    // leaves no trace in the lane's counters.
    const rc = this._engine.tryClaim(lane.index);
    if (rc !== C.RUN_INLINE) {
      if (rc !== C.NONE) throw new LaneError('ERR_LANE_ENGINE', `submit: engine error ${rc}`);
      const s = this._engine.laneStats(lane.index);
      const state = s.paused
        ? 'it is paused'
        : `${s.pending} pending, ${s.active} of max ${s.maxConcurrency} running, or a more ` +
          'urgent lane or the worker budget comes first';
      throw new LaneError(
        'ERR_LANE_WOULD_BLOCK',
        `lane '${lane.id}' cannot start the command now (${state}); submit() never blocks the ` +
          'event loop: use submitAsync()',
      );
    }
    const job = new Job(lane, ticket, commandType, payload, null, MODE_JSON, null, null, undefined);
    if (this._hub.listening) this._emitSubmitted(job);
    this._emitStarted(job);
    let result;
    let thenable;
    try {
      result = handler === undefined ? payload : handler(payload, job);
      // A `then` getter that throws is the handler's failure, like a throw.
      thenable = isThenable(result);
      if (thenable) {
        // The handler is already running; let it finish in the background,
        // settled once (see whenSettled) through the dispatch path.
        job._resolve = noop;
        job._reject = noop;
        whenSettled(
          result,
          (value) => this._settle(job, C.OUTCOME_COMPLETED, value),
          (error) => this._settle(job, C.OUTCOME_FAILED, error),
        );
        this._live++;
      }
    } catch (error) {
      this._finishInline(job, C.OUTCOME_FAILED, error);
      throw error;
    }
    if (thenable) {
      throw new LaneError(
        'ERR_LANE_WOULD_BLOCK',
        `the handler for '${commandType}' returned a Promise: submit() is synchronous and cannot ` +
          `wait for it; the command keeps running in the background (command id ` +
          `${this._commandId(ticket)}); use submitAsync() for async handlers`,
      );
    }
    let json;
    try {
      json = JSON.stringify(result);
    } catch (error) {
      const failure = new LaneError(
        'ERR_LANE_INVALID_RESULT',
        `result of '${commandType}' is not JSON-serialisable: ${error.message}`,
      );
      this._finishInline(job, C.OUTCOME_FAILED, failure);
      throw failure;
    }
    this._finishInline(job, C.OUTCOME_COMPLETED, null);
    return json === undefined ? 'null' : json;
  }

  /**
   * Queues a command and returns a promise of its result as a JSON string
   * (the async twin of submit()). The promise has a `commandId`.
   */
  submitAsync(laneId, commandType, payloadJson, options) {
    let payload;
    let signal;
    try {
      checkCommandType(commandType);
      payload = parsePayloadJson(payloadJson);
      signal = checkSubmitOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this._redis !== null) return this._redis.enqueue(laneId, commandType, payload, MODE_JSON, signal);
    return this._enqueue(laneId, commandType, payload, null, MODE_JSON, signal);
  }

  /**
   * Queues a command and returns a promise of the handler's result (a
   * value, not JSON). The payload is copied as JSON, so the handler sees
   * what a stored command would hold. The promise has a `commandId`.
   */
  run(laneId, commandType, payload, options) {
    let copy;
    let signal;
    try {
      checkCommandType(commandType);
      copy = copyPayload(payload);
      signal = checkSubmitOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this._redis !== null) return this._redis.enqueue(laneId, commandType, copy, MODE_VALUE, signal);
    return this._enqueue(laneId, commandType, copy, null, MODE_VALUE, signal);
  }

  /**
   * Queues a function as a command: `fn(context)` runs when the lane
   * dispatches it; the promise settles with what it returns or throws.
   * `options.commandType` labels it in events (default: the function's
   * name, or 'function').
   */
  add(laneId, fn, options) {
    let signal;
    let type;
    try {
      if (typeof fn !== 'function') {
        throw new TypeError(`add() takes a function, got ${typeName(fn)}`);
      }
      signal = checkSubmitOptions(options);
      if (options && options.commandType !== undefined) {
        type = options.commandType;
        checkCommandType(type);
      } else {
        // The function's name, read only when an event or the context needs it.
        type = null;
      }
    } catch (error) {
      return Promise.reject(error);
    }
    if (this._redis !== null) {
      if (type === null) type = fn.name || 'function';
      return this._redis.enqueue(laneId, type, null, MODE_VALUE, signal, fn);
    }
    return this._enqueue(laneId, type, null, fn, MODE_VALUE, signal);
  }

  /**
   * Queues many commands in one lane, in their order: `commands` are
   * `[commandType, payload]` pairs (or `{ commandType, payload }`). Resolves,
   * once all are queued, with one promise per command of its result (as
   * run()'s). Redis mode: one round trip per 500, each 500 queued whole or
   * not at all (lib/redis/many.js); in process: one submit each.
   * `options.results: false` (fire and forget): resolves with the command
   * ids instead, tracks nothing and (Redis mode) asks for no result.
   */
  runMany(laneId, commands, options) {
    return runMany(this, laneId, commands, options);
  }

  _enqueue(laneId, commandType, payload, fn, mode, signal) {
    // A burst into one lane looks the lane up once.
    let lane = this._lastLane;
    if (lane === null || lane.id !== laneId) {
      lane = this._lanes.get(laneId);
      if (lane === undefined) return Promise.reject(laneNotFound(laneId, this.laneIds));
      this._lastLane = lane;
    }
    if (this._shuttingDown) return Promise.reject(shuttingDown());
    const ticket = ++this._ticket;
    if (signal !== undefined && signal.aborted) {
      return Promise.reject(this._cancelledError(ticket, signal));
    }
    const promise = new Promise(captureResolvers);
    // The ticket reaches the engine at the next step (this tick's pump).
    let k = this._nSubmit;
    if (k === IO_CAP) {
      this._sync();
      k = 0;
    }
    const io = this._io;
    io[IO_SUBMIT + 2 * k] = lane.index;
    io[IO_SUBMIT + 2 * k + 1] = ticket;
    this._nSubmit = k + 1;
    if (fn === null) {
      this._waiting[lane.index].push(ticket, commandType, payload, mode, capturedResolve, capturedReject);
    } else {
      this._waiting[lane.index].push(ticket, commandType, fn, MODE_FN, capturedResolve, capturedReject);
    }
    this._live++;
    if (signal !== undefined) this._attachSignal(lane.index, ticket, signal);
    promise.commandId = this._commandId(ticket);
    if (this._hub.listening) {
      this._hub.emit(EVENTS.COMMAND_SUBMITTED, {
        lane_id: lane.id,
        command_id: promise.commandId,
        command_type: commandType !== null ? commandType : functionType(fn),
      });
    }
    if (!this._pumpQueued && this._started) {
      this._pumpQueued = true;
      resolved.then(this._pumpTask);
    }
    return promise;
  }

  // ---- cancel and pause ------------------------------------------------------------

  /**
   * Cancels a command that has not started: it leaves its lane, its promise
   * rejects with ERR_LANE_CANCELLED and queue.command.cancelled is emitted.
   * Returns false if it already started, finished or is unknown.
   */
  cancel(commandId) {
    if (this._redis !== null) return this._redis.cancel(commandId);
    if (typeof commandId !== 'string' || !commandId.startsWith(this._idPrefix)) return false;
    const hex = commandId.slice(this._idPrefix.length);
    if (!/^[0-9a-f]{1,13}$/.test(hex)) return false;
    const ticket = parseInt(hex, 16);
    for (let index = 0; index < this._waiting.length; index++) {
      if (this._waiting[index].find(ticket) >= 0) return this._withdraw(index, ticket, undefined);
    }
    return false;
  }

  /** Running commands finish; no new ones start in the lane until resumeLane(). */
  pauseLane(laneId) {
    if (this._redis !== null) {
      this._redis.pauseLane(laneId);
      return;
    }
    this._engine.pause(this._lane(laneId).index);
  }

  resumeLane(laneId) {
    if (this._redis !== null) {
      this._redis.resumeLane(laneId);
      return;
    }
    this._engine.resume(this._lane(laneId).index);
    this._schedulePump();
  }

  // Withdraws a waiting job (only a job still waiting in its lane can be:
  // the engine refuses a started one).
  _withdraw(laneIndex, ticket, signal) {
    const ring = this._waiting[laneIndex];
    const at = ring.find(ticket);
    if (at < 0) return false;
    this._sync();
    if (this._engine.cancel(laneIndex, ticket) !== 1) return false;
    const reject = ring.remove(at);
    this._live--;
    this._detachSignal(ticket);
    if (this._hub.listening) {
      this._hub.emit(EVENTS.COMMAND_CANCELLED, {
        lane_id: ring.lane.id,
        command_id: this._commandId(ticket),
      });
    }
    reject(this._cancelledError(ticket, signal));
    if (this._live === 0 && this._idleWaiters.length) this._wakeIdleWaiters();
    return true;
  }

  _cancelledError(ticket, signal) {
    const options = signal !== undefined ? { cause: signal.reason } : undefined;
    return new LaneError(
      'ERR_LANE_CANCELLED',
      `Command ${this._commandId(ticket)} was cancelled before it started`,
      options,
    );
  }

  _attachSignal(laneIndex, ticket, signal) {
    const onAbort = () => this._withdraw(laneIndex, ticket, signal);
    this._signals.set(ticket, { signal, onAbort });
    signal.addEventListener('abort', onAbort, { once: true });
  }

  // Stops listening to a waiting job's signal; returns the signal.
  _detachSignal(ticket) {
    const entry = this._signals.get(ticket);
    if (entry === undefined) return undefined;
    this._signals.delete(ticket);
    entry.signal.removeEventListener('abort', entry.onAbort);
    return entry.signal;
  }

  // ---- dispatch --------------------------------------------------------------------

  _schedulePump() {
    if (!this._pumpQueued && this._started) {
      this._pumpQueued = true;
      resolved.then(this._pumpTask);
    }
  }

  // One call into the engine: the buffered completions, then the buffered
  // submits, then up to `max` dispatches (left in the exchange area; every
  // one is active and must be started). Returns how many.
  _step(max) {
    const completes = this._nComplete;
    const submits = this._nSubmit;
    this._nComplete = 0;
    this._nSubmit = 0;
    const n = this._engine.step(completes, submits, max);
    if (submits !== 0 && this._io[0] !== 0) this._failSubmits(submits);
    return checkRc(n, 'complete');
  }

  // Hands the engine what is buffered, dispatching nothing: before anything
  // reads the engine's state or claims from it.
  _sync() {
    if (this._nComplete !== 0 || this._nSubmit !== 0) this._step(0);
  }

  // Submits the engine refused (out of memory): their promises reject.
  _failSubmits(submits) {
    const io = this._io;
    for (let i = 0; i < submits; i++) {
      const rc = io[IO_SUBMIT + 2 * i];
      if (rc >= 0) continue;
      const ticket = io[IO_SUBMIT + 2 * i + 1];
      for (const ring of this._waiting) {
        const at = ring.find(ticket);
        if (at < 0) continue;
        const reject = ring.remove(at);
        this._live--;
        this._detachSignal(ticket);
        reject(new LaneError('ERR_LANE_ENGINE', `submit: engine error ${rc}`));
        break;
      }
    }
    if (this._live === 0 && this._idleWaiters.length) this._wakeIdleWaiters();
  }

  // Starts every ticket the engine hands out. Not re-entrant: a handler that
  // completes synchronously only frees its slot, and this loop takes the
  // next ticket, so a long run of synchronous jobs never deepens the stack.
  _pump() {
    if (this._pumping || this._yielding || !this._started) return;
    this._pumping = true;
    try {
      const io = this._io;
      const waiting = this._waiting;
      for (;;) {
        // Handlers that finish synchronously only buffer their completion:
        // the next step applies them and dispatches what they let run.
        const max = Math.min(IO_CAP, YIELD_EVERY - this._sinceYield);
        const n = this._step(max);
        for (let i = 0; i < n; i++) {
          const ticket = io[IO_DISPATCH + 2 * i + 1];
          const job = waiting[io[IO_DISPATCH + 2 * i]].take(ticket);
          if (this._signals.size !== 0) job.signal = this._detachSignal(ticket);
          this._start(job);
        }
        this._sinceYield += n;
        if (this._sinceYield >= YIELD_EVERY) {
          this._yield();
          break;
        }
        // The engine had nothing more to hand out, and nothing has changed
        // since (no completion or submit buffered): no need to ask again.
        if (n < max && this._nComplete === 0 && this._nSubmit === 0) break;
      }
    } finally {
      this._pumping = false;
    }
  }

  _yield() {
    this._yielding = true;
    setImmediate(this._resumeTask);
  }

  _start(job) {
    if (this._hub.listening) this._emitStarted(job);
    let result;
    try {
      if (job.fn !== null) {
        result = job.fn(job);
      } else {
        const handler = this._handlers.get(job._type);
        result = handler === undefined ? job.payload : handler(job.payload, job);
      }
      if (isThenable(result)) {
        this._settleLater(job, result);
        return;
      }
    } catch (error) {
      this._settle(job, C.OUTCOME_FAILED, error);
      return;
    }
    this._settle(job, C.OUTCOME_COMPLETED, result);
  }

  // Settles the job when the thenable its handler returned settles. (Its own
  // function: the closures' context is made only for async results.)
  _settleLater(job, thenable) {
    whenSettled(
      thenable,
      (value) => this._settle(job, C.OUTCOME_COMPLETED, value),
      (error) => this._settle(job, C.OUTCOME_FAILED, error),
    );
  }

  // Ends a dispatched job: events, the caller's promise, then the slot.
  // Once per job: a second call (a handler's thenable calling back again,
  // a throw after a settle) changes nothing.
  _settle(job, outcome, value) {
    if (job._done) return;
    job._done = true;
    if (outcome === C.OUTCOME_COMPLETED && job.mode === MODE_JSON) {
      try {
        value = JSON.stringify(value);
        if (value === undefined) value = 'null';
      } catch (error) {
        outcome = C.OUTCOME_FAILED;
        value = new LaneError(
          'ERR_LANE_INVALID_RESULT',
          `result of '${job.commandType}' is not JSON-serialisable: ${error.message}`,
        );
      }
    }
    this._live--;
    // The slot first: the pump it schedules runs before the caller's
    // continuation, which then sees the next job started.
    this._release(job.lane.index, outcome);
    if (outcome === C.OUTCOME_COMPLETED) {
      if (this._hub.listening) this._emitCompleted(job);
      job._resolve(value);
    } else {
      if (this._hub.listening) this._emitFailed(job, value);
      job._reject(value);
    }
    if (this._live === 0 && this._idleWaiters.length) this._wakeIdleWaiters();
  }

  // Frees a slot at the next step: the completions of one microtask round
  // reach the engine in one call, which dispatches what they let run.
  _release(laneIndex, outcome) {
    let k = this._nComplete;
    if (k === IO_CAP) {
      this._sync();
      k = 0;
    }
    this._io[IO_COMPLETE + k] = laneIndex * 4 + outcome;
    this._nComplete = k + 1;
    if (!this._pumping) this._schedulePump();
  }

  // The end of a command that submit() ran inline.
  _finishInline(job, outcome, error) {
    if (job._done) return;
    job._done = true;
    if (this._hub.listening) {
      if (outcome === C.OUTCOME_COMPLETED) this._emitCompleted(job);
      else this._emitFailed(job, error);
    }
    checkRc(this._engine.complete(job.lane.index, outcome), 'complete');
    // The freed slot may let queued work start; not inside the caller's submit().
    if (this._nSubmit !== 0 || this._engine.totals()[0] > 0) this._schedulePump();
  }

  // ---- events ------------------------------------------------------------------------

  /**
   * Calls `callback(null, event)` for every event from now on, on the event
   * loop (never inside a submit). `event.payload` is a JSON string. A
   * callback that throws is reported with process.emitWarning and stays
   * subscribed.
   */
  subscribe(callback) {
    const subscription = this._hub.subscribe(callback, null);
    if (this._redis !== null) this._redis.ensureEvents();
    return subscription;
  }

  /** Like subscribe(), for the events whose key is exactly one of `keys`. */
  subscribeFiltered(keys, callback) {
    if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) {
      throw new TypeError('subscribeFiltered() takes an array of event keys (strings) and a callback');
    }
    const subscription = this._hub.subscribe(callback, new Set(keys));
    if (this._redis !== null) this._redis.ensureEvents();
    return subscription;
  }

  _emitSubmitted(job) {
    this._hub.emit(EVENTS.COMMAND_SUBMITTED, {
      lane_id: job.lane.id,
      command_id: this._commandId(job.ticket),
      command_type: job.commandType,
    });
  }

  _emitStarted(job) {
    this._hub.emit(EVENTS.COMMAND_STARTED, {
      lane_id: job.lane.id,
      command_id: this._commandId(job.ticket),
      command_type: job.commandType,
    });
  }

  _emitCompleted(job) {
    this._hub.emit(EVENTS.COMMAND_COMPLETED, {
      lane_id: job.lane.id,
      command_id: this._commandId(job.ticket),
    });
  }

  _emitFailed(job, error) {
    this._hub.emit(EVENTS.COMMAND_FAILED, {
      lane_id: job.lane.id,
      command_id: this._commandId(job.ticket),
      error: describeError(error),
    });
  }

  // ---- idle and drain ------------------------------------------------------------------

  _wakeIdleWaiters() {
    const waiters = this._idleWaiters;
    this._idleWaiters = [];
    const done = this._afterIdle();
    for (const waiter of waiters) {
      if (waiter.timer !== null) waiter.timer.clear();
      done.then(waiter.resolve, waiter.reject);
    }
  }

  async _afterIdle() {
    if (this._shuttingDown && !this._stopped) {
      this._stopped = true;
      // The original defined this event and never sent it.
      this._hub.emit(EVENTS.SHUTDOWN_COMPLETE, null);
      await this._hub.flush();
      this._hub.closeAll();
      return;
    }
    await this._hub.flush();
  }

  _drainTimeoutMessage(timeoutMs) {
    const stats = this.stats();
    const busy = stats.lanes
      .filter((s) => s.pending || s.active)
      .map((s) => `${s.laneId}: ${s.pending} pending, ${s.active} active`);
    return `drain timed out after ${describeMs(timeoutMs)} with ${stats.totalPending} pending and ` +
      `${stats.totalActive} active (${busy.join('; ') || 'finishing'})`;
  }

  // ---- observation ---------------------------------------------------------------------

  /** A snapshot: totals and one entry per lane, in declaration order. */
  stats() {
    if (this._redis !== null) return this._redis.stats();
    this._sync();
    let totalPending = 0;
    let totalActive = 0;
    const lanes = this._laneList.map((lane) => {
      const s = this._engine.laneStats(lane.index);
      totalPending += s.pending;
      totalActive += s.active;
      return {
        laneId: lane.id,
        priority: s.priority,
        pending: s.pending,
        active: s.active,
        minConcurrency: s.minConcurrency,
        maxConcurrency: s.maxConcurrency,
        paused: s.paused,
        submitted: s.submitted,
        dispatched: s.dispatched,
        completed: s.completed,
        failed: s.failed,
        cancelled: s.cancelled,
      };
    });
    return { totalPending, totalActive, lanes };
  }

  /** stats() without blocking the event loop: a promise (Redis mode: one round trip). */
  statsAsync() {
    if (this._redis !== null) return this._redis.statsAsync();
    try {
      return Promise.resolve(this.stats());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Redis mode: the queue's dead letters, oldest first (a promise).
   * In process there are none: an empty list.
   */
  deadLetters() {
    if (this._redis !== null) return this._redis.deadLetters();
    return Promise.resolve([]);
  }

  /**
   * Stops at once, without waiting for the queue to drain. Redis mode: this
   * process leaves (its worker's unfinished commands go back to the front of
   * their lanes, for another worker); its pending promises and drain()
   * calls reject (ERR_LANE_SHUTTING_DOWN), and nothing of Redis mode keeps
   * the process alive afterwards. In process: shutdown(), then a drain.
   */
  close() {
    if (this._redis !== null) return this._redis.close();
    this.shutdown();
    return this.drain();
  }

  // ---- manual dispatch (scenario replays) ----------------------------------------------

  // Stops automatic dispatching: submits queue, completions only free their
  // slot, and nothing starts until _dispatchNow(). For replaying the shared
  // scheduling scenarios through this class; not part of the API.
  _setManualDispatch(manual) {
    this._manual = Boolean(manual);
    this._yielding = this._manual;
    if (!this._manual) this._schedulePump();
  }

  // Runs the pump once (manual mode): starts every ticket the engine hands out.
  _dispatchNow() {
    this._yielding = false;
    try {
      this._pump();
    } finally {
      this._yielding = this._manual;
    }
  }

  // ---- helpers -------------------------------------------------------------------------

  _lane(laneId) {
    const lane = this._lanes.get(laneId);
    if (lane === undefined) throw laneNotFound(laneId, this.laneIds);
    return lane;
  }

  _commandId(ticket) {
    const block = Math.floor(ticket / 4096);
    if (block !== this._idBlock) {
      this._idBlock = block;
      this._idBlockPrefix = this._idPrefix + block.toString(16).padStart(9, '0');
    }
    return this._idBlockPrefix + HEX3[ticket & 4095];
  }
}

module.exports = { Lane };
