'use strict';
// The Lane class: the queue itself.
//
// How a command flows:
//   submit    — the job goes into `_jobs` under a fresh ticket and the ticket
//               into its lane in the engine; a pump is queued as a microtask,
//               so a burst of submits is scheduled as one batch;
//   pump      — asks the engine for the next ticket (`tryNext`) until it has
//               none, and starts each job: its handler runs at once; a
//               Promise it returns completes the job when it settles;
//   complete  — frees the slot in the engine and takes the next ticket in the
//               same native call (`completeAndNext`), then resolves the
//               caller's promise.
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
  MODE_JSON, MODE_VALUE, Job, CommandContext, parsePayloadJson, copyPayload, checkCommandType,
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

function noop() {}

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
      const lane = Object.freeze({ id: config.laneId, index, ...config });
      this._lanes.set(config.laneId, lane);
      this._laneList.push(lane);
    }

    this._handlers = new Map();
    this._jobs = new Map();
    this._ticket = 0;
    // A random, UUID-shaped prefix per queue plus the ticket in hex: ids are
    // unique across processes without a randomUUID() per command.
    this._idPrefix = randomUUID().slice(0, 24);

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
    if (this._jobs.size === 0) return this._afterIdle();
    if (!this._started) {
      return Promise.reject(new LaneError(
        'ERR_LANE_NOT_STARTED',
        `Queue is not started: call start() before drain() (${this._jobs.size} commands are ` +
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
      result = handler === undefined ? payload : handler(payload, new CommandContext(this, job));
      // A `then` getter that throws is the handler's failure, like a throw.
      thenable = isThenable(result);
      if (thenable) {
        // The handler is already running; let it finish in the background,
        // settled once (see whenSettled) through the dispatch path.
        job.resolve = noop;
        job.reject = noop;
        whenSettled(
          result,
          (value) => this._settle(job, C.OUTCOME_COMPLETED, value),
          (error) => this._settle(job, C.OUTCOME_FAILED, error),
        );
        this._jobs.set(ticket, job);
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
      type = options && options.commandType !== undefined ? options.commandType : (fn.name || 'function');
      checkCommandType(type);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this._redis !== null) return this._redis.enqueue(laneId, type, null, MODE_VALUE, signal, fn);
    return this._enqueue(laneId, type, null, fn, MODE_VALUE, signal);
  }

  /**
   * Queues many commands in one lane, in their order: `commands` are
   * `[commandType, payload]` pairs (or `{ commandType, payload }`). Resolves,
   * once all are queued, with one promise per command of its result (as
   * run()'s). Redis mode: one round trip per 500, each 500 queued whole or
   * not at all (lib/redis/many.js); in process: one submit each.
   */
  runMany(laneId, commands, options) {
    return runMany(this, laneId, commands, options);
  }

  _enqueue(laneId, commandType, payload, fn, mode, signal) {
    const lane = this._lanes.get(laneId);
    if (lane === undefined) return Promise.reject(laneNotFound(laneId, this.laneIds));
    if (this._shuttingDown) return Promise.reject(shuttingDown());
    const ticket = ++this._ticket;
    if (signal !== undefined && signal.aborted) {
      return Promise.reject(this._cancelledError(ticket, signal));
    }
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const job = new Job(lane, ticket, commandType, payload, fn, mode, resolve, reject, signal);
    const rc = this._engine.submit(lane.index, ticket);
    if (rc !== C.OK) return Promise.reject(new LaneError('ERR_LANE_ENGINE', `submit: engine error ${rc}`));
    this._jobs.set(ticket, job);
    if (signal !== undefined) {
      job.onAbort = () => this._withdraw(job, signal);
      signal.addEventListener('abort', job.onAbort, { once: true });
    }
    promise.commandId = this._idPrefix + ticket.toString(16).padStart(12, '0');
    if (this._hub.listening) this._emitSubmitted(job);
    if (!this._pumpQueued && this._started) {
      this._pumpQueued = true;
      queueMicrotask(this._pumpTask);
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
    const job = this._jobs.get(parseInt(hex, 16));
    return job !== undefined && this._withdraw(job, undefined);
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

  _withdraw(job, signal) {
    // Only a job still waiting in its lane can be withdrawn (the engine
    // refuses a started one); `done` makes that explicit.
    if (job.done || this._engine.cancel(job.lane.index, job.ticket) !== 1) return false;
    job.done = true;
    this._jobs.delete(job.ticket);
    this._detachSignal(job);
    if (this._hub.listening) {
      this._hub.emit(EVENTS.COMMAND_CANCELLED, {
        lane_id: job.lane.id,
        command_id: this._commandId(job.ticket),
      });
    }
    job.reject(this._cancelledError(job.ticket, signal));
    if (this._jobs.size === 0 && this._idleWaiters.length) this._wakeIdleWaiters();
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

  _detachSignal(job) {
    if (job.onAbort !== null) {
      job.signal.removeEventListener('abort', job.onAbort);
      job.onAbort = null;
    }
  }

  // ---- dispatch --------------------------------------------------------------------

  _schedulePump() {
    if (!this._pumpQueued && this._started) {
      this._pumpQueued = true;
      queueMicrotask(this._pumpTask);
    }
  }

  // Starts every ticket the engine hands out. Not re-entrant: a handler that
  // completes synchronously only frees its slot, and this loop takes the
  // next ticket, so a long run of synchronous jobs never deepens the stack.
  _pump() {
    if (this._pumping || this._yielding || !this._started) return;
    this._pumping = true;
    try {
      const engine = this._engine;
      let ticket;
      while ((ticket = engine.tryNext()) > 0) {
        this._start(this._jobs.get(ticket));
        if (++this._sinceYield >= YIELD_EVERY) {
          this._yield();
          break;
        }
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
    if (job.onAbort !== null) this._detachSignal(job);
    if (this._hub.listening) this._emitStarted(job);
    let result;
    try {
      if (job.fn !== null) {
        result = job.fn(new CommandContext(this, job));
      } else {
        const handler = this._handlers.get(job.type);
        result = handler === undefined ? job.payload : handler(job.payload, new CommandContext(this, job));
      }
      if (isThenable(result)) {
        whenSettled(
          result,
          (value) => this._settle(job, C.OUTCOME_COMPLETED, value),
          (error) => this._settle(job, C.OUTCOME_FAILED, error),
        );
        return;
      }
    } catch (error) {
      this._settle(job, C.OUTCOME_FAILED, error);
      return;
    }
    this._settle(job, C.OUTCOME_COMPLETED, result);
  }

  // Ends a dispatched job: events, the caller's promise, then the slot.
  // Once per job: a second call (a handler's thenable calling back again,
  // a throw after a settle) changes nothing.
  _settle(job, outcome, value) {
    if (job.done) return;
    job.done = true;
    if (outcome === C.OUTCOME_COMPLETED && job.mode === MODE_JSON) {
      try {
        value = JSON.stringify(value);
        if (value === undefined) value = 'null';
      } catch (error) {
        outcome = C.OUTCOME_FAILED;
        value = new LaneError(
          'ERR_LANE_INVALID_RESULT',
          `result of '${job.type}' is not JSON-serialisable: ${error.message}`,
        );
      }
    }
    this._jobs.delete(job.ticket);
    if (outcome === C.OUTCOME_COMPLETED) {
      if (this._hub.listening) this._emitCompleted(job);
      job.resolve(value);
    } else {
      if (this._hub.listening) this._emitFailed(job, value);
      job.reject(value);
    }
    this._release(job.lane.index, outcome);
    if (this._jobs.size === 0 && this._idleWaiters.length) this._wakeIdleWaiters();
  }

  // Frees a slot; outside the pump, also starts what the slot lets run.
  _release(laneIndex, outcome) {
    const engine = this._engine;
    if (this._pumping || this._yielding) {
      checkRc(engine.complete(laneIndex, outcome), 'complete');
      return;
    }
    this._pumping = true;
    try {
      let ticket = checkRc(engine.completeAndNext(laneIndex, outcome), 'complete');
      while (ticket > 0) {
        this._start(this._jobs.get(ticket));
        if (++this._sinceYield >= YIELD_EVERY) {
          this._yield();
          break;
        }
        ticket = engine.tryNext();
      }
    } finally {
      this._pumping = false;
    }
  }

  // The end of a command that submit() ran inline.
  _finishInline(job, outcome, error) {
    if (job.done) return;
    job.done = true;
    if (this._hub.listening) {
      if (outcome === C.OUTCOME_COMPLETED) this._emitCompleted(job);
      else this._emitFailed(job, error);
    }
    checkRc(this._engine.complete(job.lane.index, outcome), 'complete');
    // The freed slot may let queued work start; not inside the caller's submit().
    if (this._engine.totals()[0] > 0) this._schedulePump();
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
      command_type: job.type,
    });
  }

  _emitStarted(job) {
    this._hub.emit(EVENTS.COMMAND_STARTED, {
      lane_id: job.lane.id,
      command_id: this._commandId(job.ticket),
      command_type: job.type,
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
   * their lanes, for another worker); its pending promises reject. In
   * process: shutdown(), then a drain.
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
    return this._idPrefix + ticket.toString(16).padStart(12, '0');
  }
}

module.exports = { Lane };
