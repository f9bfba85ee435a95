'use strict';
// RedisQueue: what a Lane created with { redis, queue } runs on. The same
// surface as the in-process queue, meaning the whole queue: submits from
// any process, events of every process (read back from the queue's stream),
// stats() cluster-wide, drain() until nothing is pending, delayed or running
// anywhere. Every scheduling decision is made inside Redis by the a3s_lane
// function library (the Python package's lanes.lua, the one source of the
// rules); this file only calls it, with the Python SDK's wire format
// (pylane/redis/runtime.py, worker.py), so Python and Node processes serve
// and feed one queue together.

const { randomFillSync } = require('node:crypto');
const { LaneError, shuttingDown, typeName, describeMs } = require('../errors');
const { EVENTS, formatWallTimestamp } = require('../events');
const { checkDuration } = require('../timers');
const {
  Backoff, Functions, sleep, openClient, closeClient, ensureLibrary, laneConfigJson, redact, baseKey,
  isConnectionError, unreachable,
} = require('./connection');
const { getBridge } = require('./bridge');
const { RedisWorker } = require('./worker');

// submitAsync (JSON text out) or run / add (values out), as lib/jobs.js has them.
const { MODE_JSON, MODE_VALUE } = require('../jobs');
// The command type of add()'s functions: only this process's worker handles it.
const FN_TYPE_PREFIX = 'a3s.fn:';
// Commands per a3s_submit_many call (runMany), as the Python SDK's
// SUBMIT_BATCH: big enough to spend little per command, small enough that
// one call holds Redis (single-threaded) for ~1-2 ms.
const SUBMIT_BATCH = 500;
// Results handed out per a3s_take_results call; how long Redis keeps a results list (lanes.lua).
const TAKE_MOST = 1000;
const RESULT_TTL_MS = 86_400_000;

// This process's workers, per queue (url + name): a synchronous submit
// waits for them through the bridge (see submit()).
const localWorkers = new Map();

// Command ids: 128 random bits in hex, as uuid4().hex without its fixed
// bits, from a pool of random bytes filled 256 ids at a time (randomUUID()
// plus the dashes' removal cost ~1.4 us an id, this ~0.2 us).
const ID_BYTES = 16;
const idPool = Buffer.alloc(ID_BYTES * 256);
let idAt = idPool.length;

function uuidHex() {
  if (idAt === idPool.length) {
    randomFillSync(idPool);
    idAt = 0;
  }
  const id = idPool.toString('hex', idAt, idAt + ID_BYTES);
  idAt += ID_BYTES;
  return id;
}

function noop() {}

function cancelledMany(signal) {
  return new LaneError('ERR_LANE_CANCELLED', 'Commands were cancelled before they were queued', { cause: signal.reason });
}

/** A command this process waits for: its promise's resolvers and how to settle it. */
class PendingCommand {
  constructor(queue, id, mode, fnKey) {
    this.queue = queue;
    this.id = id;
    this.mode = mode;
    this.fnKey = fnKey;
    this.resolve = null;
    this.reject = null;
    this.promise = null;
    this.cleanup = null;
    this.signal = undefined;
    this.done = false;
  }

  settle() {
    if (this.done) return false;
    this.done = true;
    const queue = this.queue;
    queue.pending.delete(this.id);
    if (this.fnKey !== null) queue.fnJobs.delete(this.fnKey);
    if (this.cleanup) this.cleanup();
    queue.release();
    return true;
  }

  settleOk(value) {
    if (this.settle()) this.resolve(value);
  }

  settleError(error) {
    if (this.settle()) this.reject(error);
  }

  /** Forgets a command that was never queued (nobody holds its promise). */
  discard() {
    this.promise.catch(noop);
    this.settleError(new LaneError('ERR_LANE_REDIS', `command ${this.id} was not queued`));
  }
}

class RedisQueue {
  constructor(lane, { url, queue, lanes, slots, leaseMs, options }) {
    this.lane = lane;
    this.url = url;
    this.queueName = queue;
    this.base = baseKey(queue);
    this.lanes = lanes;
    this.slots = slots;
    this.leaseMs = leaseMs;
    this.options = options; // events_max, max_lost, dead_max: set by the first process
    this.clientId = uuidHex();
    this.resultsKey = this.key(`results:${this.clientId}`);
    this.pending = new Map(); // command id -> { resolve, reject, mode, cleanup }
    this.syncs = new Map(); // drain's sync tokens -> resolve
    this.drainClients = new Set(); // the blocking connections of drain() calls waiting
    this.fns = null;
    this.fnsPromise = null;
    this.worker = null;
    this.fnId = 0;
    this.fnJobs = new Map(); // add()'s functions waiting to run here
    this.started = false;
    this.shuttingDown = false;
    this.stopped = false;
    this.stoppedIdle = false;
    this.closed = false;
    this.holds = 0;
    this.keepalive = null;
    this.resultsClient = null;
    this.resultsActive = false;
    this.eventsClient = null;
    this.eventsActive = false;
  }

  key(suffix) {
    return `${this.base}:${suffix}`;
  }

  // ---- process lifetime --------------------------------------------------------
  // Connections are unref'd: the process stays alive while a promise this
  // queue returned is pending, a command runs here, drain() waits, or the
  // worker was started with { keepAlive: true }.

  hold() {
    if (this.holds++ === 0) this.keepalive = setInterval(noop, 2 ** 30);
  }

  release() {
    if (--this.holds === 0 && this.keepalive !== null) {
      clearInterval(this.keepalive);
      this.keepalive = null;
    }
  }

  // ---- connection ----------------------------------------------------------------

  /** The main client's functions: connects (bounded), loads the library, registers the lanes. */
  functions() {
    if (this.fns !== null && this.fns.client.isOpen) return Promise.resolve(this.fns);
    if (this.fnsPromise === null) {
      this.fnsPromise = (async () => {
        if (this.fns !== null) closeClient(this.fns.client);
        const client = await openClient(this.url);
        try {
          if (this.closed) throw new LaneError('ERR_LANE_SHUTTING_DOWN', 'the queue was closed');
          await ensureLibrary(client, this.url);
          const fns = new Functions(client, this.url, this.queueName);
          await this.registerLanes(fns);
          this.fns = fns;
          return fns;
        } catch (error) {
          closeClient(client);
          throw error;
        }
      })().finally(() => {
        this.fnsPromise = null;
      });
    }
    return this.fnsPromise;
  }

  registerLanes(fns) {
    return fns.registerLanes(this.lanes.map(laneConfigJson), this.options);
  }

  bridgeCall(request, limitMs) {
    return getBridge().call({ url: this.url, queue: this.queueName, redacted: redact(this.url), ...request }, limitMs);
  }

  // ---- handlers ----------------------------------------------------------------------

  hasHandlers() {
    return this.lane._handlers.size > 0 || this.fnJobs.size > 0;
  }

  handledTypes() {
    const types = new Set(this.lane._handlers.keys());
    if (this.worker !== null) types.add(FN_TYPE_PREFIX + this.worker.id);
    return [...types].sort();
  }

  /** The function for a claimed command's type, or null (the payload is echoed). */
  handlerFor(commandType) {
    const handler = this.lane._handlers.get(commandType);
    if (handler !== undefined) return handler;
    if (this.worker !== null && commandType === FN_TYPE_PREFIX + this.worker.id) {
      return (payload, context) => {
        const job = this.fnJobs.get(payload && payload.fn);
        if (job === undefined) throw new LaneError('ERR_LANE_INVALID_PAYLOAD', 'the function of this add() is gone (it ran already)');
        this.fnJobs.delete(payload.fn);
        return job.fn({ ...context, commandType: job.label });
      };
    }
    return null;
  }

  // ---- lifecycle ------------------------------------------------------------------------

  /**
   * Joins the queue: as a worker with `slots` slots, or (worker: false) as a
   * producer only. Synchronous, like the in-process start(): the bridge
   * connects (bounded), loads or checks the library, registers the lanes and
   * joins before it returns; an unreachable Redis throws here.
   */
  start(options) {
    const { worker = true, keepAlive = false } = checkStartOptions(options);
    if (this.stopped || this.shuttingDown) throw shuttingDown();
    if (this.started) return;
    let w = null;
    if (worker) w = new RedisWorker(this, this.slots, this.leaseMs);
    this.worker = w;
    try {
      this.bridgeCall({
        op: 'start',
        lanes: this.lanes.map(laneConfigJson),
        options: this.options,
        worker: w && { workerId: w.id, slots: w.slots, types: this.handledTypes(), leaseMs: w.leaseMs, info: w.info },
      });
    } catch (error) {
      this.worker = null;
      throw error;
    }
    this.started = true;
    if (w !== null) {
      const key = this.queueKey();
      if (!localWorkers.has(key)) localWorkers.set(key, new Set());
      localWorkers.get(key).add(this);
      if (keepAlive) {
        this.keptAlive = true;
        this.hold();
      }
      w.run();
    }
  }

  queueKey() {
    return `${this.url}\n${this.queueName}`;
  }

  shutdown() {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.emitLocal(EVENTS.SHUTDOWN_STARTED, null);
  }

  /**
   * Resolves once the whole queue is idle (nothing pending, delayed or
   * running on any machine) and every result that came for this process
   * was handed out; after shutdown() this process then leaves.
   */
  drain(timeoutMs) {
    let limit;
    try {
      limit = checkDuration(timeoutMs, 'timeoutMs', 'drain(timeoutMs)');
    } catch (error) {
      return Promise.reject(error);
    }
    this.hold();
    return this.waitIdle(limit).then(async () => {
      if (this.shuttingDown) await this.stopAll(true);
      else await this.lane._hub.flush();
    }).finally(() => this.release());
  }

  async waitIdle(limit) {
    if (this.stopped) return;
    const deadline = limit === undefined ? Infinity : Date.now() + limit;
    const fns = await this.functions();
    const events = this.key('events');
    const blocking = await openClient(this.url);
    if (this.stopped) {
      closeClient(blocking);
      return this.stoppedWhileDraining();
    }
    this.drainClients.add(blocking);
    try {
      for (;;) {
        let last;
        let raw;
        try {
          last = await blocking.sendCommand(['XREVRANGE', events, '+', '-', 'COUNT', '1']);
          raw = await fns.stats();
        } catch (error) {
          if (this.stopped) return this.stoppedWhileDraining();
          if (error instanceof LaneError) throw error;
          throw unreachable(this.url, error);
        }
        const stats = statsOf(raw);
        if (!(stats.totalPending || stats.totalActive || stats.totalDelayed)) break;
        const left = deadline - Date.now();
        if (left <= 0) throw new LaneError('ERR_LANE_TIMEOUT', drainTimeoutMessage(stats, limit));
        const lastId = last && last.length ? String(last[0][0]) : '0-0';
        // Every change that can make the queue idle writes an event.
        const block = left === Infinity ? 0 : Math.max(1, Math.min(Math.ceil(left), 2 ** 31 - 1));
        try {
          await blocking.sendCommand(['XREAD', 'COUNT', '1', 'BLOCK', String(block), 'STREAMS', events, lastId]);
        } catch (error) {
          if (this.stopped) return this.stoppedWhileDraining();
          throw unreachable(this.url, error);
        }
        if (this.stopped) return this.stoppedWhileDraining();
      }
      await this.syncResults(deadline);
      if (this.stopped) return this.stoppedWhileDraining();
    } finally {
      this.drainClients.delete(blocking);
      closeClient(blocking);
    }
  }

  // A drain() that was waiting when this process left: done if another
  // drain() saw the queue idle and left (after shutdown()), else
  // ERR_LANE_SHUTTING_DOWN (close() ran).
  stoppedWhileDraining() {
    if (!this.stoppedIdle) throw closedWhileDraining();
  }

  // Waits until the results reader has handed out every result pushed so
  // far (drain never resolves with a finished command's promise pending).
  async syncResults(deadline) {
    if (this.pending.size === 0 || !this.resultsActive) return;
    const token = uuidHex();
    const done = new Promise((resolve) => this.syncs.set(token, resolve));
    const fns = await this.functions();
    await fns.client.sendCommand(['RPUSH', this.resultsKey, JSON.stringify({ sync: token })]);
    let timer;
    await Promise.race([done, new Promise((resolve) => {
      timer = setTimeout(resolve, Math.max(0, Math.min(deadline - Date.now(), 2 ** 31 - 1)));
      timer.unref();
    })]);
    clearTimeout(timer);
    this.syncs.delete(token);
  }

  async stopAll(idle = false) {
    if (this.stopped) return;
    this.stopped = true;
    this.stoppedIdle = idle; // drain() saw the queue idle (else close())
    // Subscriptions end here: the events of this process leaving are not read.
    this.eventsActive = false;
    closeClient(this.eventsClient);
    if (this.worker !== null) {
      const set = localWorkers.get(this.queueKey());
      if (set) set.delete(this);
      await this.worker.stop();
      if (this.keptAlive) {
        this.keptAlive = false;
        this.release();
      }
    }
    this.resultsActive = false;
    closeClient(this.resultsClient);
    this.closed = true;
    if (this.fns !== null) closeClient(this.fns.client);
    // Through settleError, not reject alone: each pending command holds the
    // process (hold()) until it is settled, and an abort listener and an
    // add() function of its own; rejecting without settling kept the
    // keep-alive interval forever, so the process never exited.
    for (const entry of [...this.pending.values()]) {
      entry.settleError(new LaneError('ERR_LANE_SHUTTING_DOWN', `the queue was closed before command ${entry.id} finished`));
    }
    // drain() calls still waiting end too (ERR_LANE_SHUTTING_DOWN), and so do
    // the waits for the results reader (syncs): nothing of this queue runs on.
    for (const client of this.drainClients) closeClient(client);
    this.drainClients.clear();
    for (const resolve of this.syncs.values()) resolve();
    this.syncs.clear();
    const hub = this.lane._hub;
    hub.emit(EVENTS.SHUTDOWN_COMPLETE, null);
    await hub.flush();
    hub.closeAll();
  }

  /** Leaves at once, without waiting for the queue to drain. */
  close() {
    if (!this.shuttingDown) this.shutdown();
    return this.stopAll();
  }

  // ---- submit ----------------------------------------------------------------------------

  /**
   * The seed's synchronous submit. It waits (the bridge does the round
   * trips while this thread blocks) only when no JS code of this process
   * can be involved in the command: this process's workers on the queue
   * have no handlers and run nothing, so whatever they would get is echoed
   * by the bridge on their behalf. Otherwise ERR_LANE_WOULD_BLOCK.
   */
  submitSync(laneId, commandType, payload) {
    if (!this.started) {
      throw new LaneError('ERR_LANE_NOT_STARTED',
        'Queue is not started: call start() before submit() (submitAsync() works before start too)');
    }
    const local = [...(localWorkers.get(this.queueKey()) || [])].filter((q) => q.worker !== null && !q.stopped);
    const busy = local.find((q) => q.worker.usesEventLoop());
    if (busy !== undefined) {
      throw new LaneError(
        'ERR_LANE_WOULD_BLOCK',
        `submit() is synchronous and cannot wait here: this process is a worker of Redis queue ` +
          `'${this.queueName}' with JS handlers (or commands running), which need this very event loop, ` +
          'so waiting could deadlock; use submitAsync()',
      );
    }
    const id = uuidHex();
    const { message, onBehalf } = this.bridgeCall({
      op: 'submit',
      id,
      laneId,
      commandType,
      payloadJson: JSON.stringify(payload) ?? 'null',
      proxies: local.map((q) => ({
        workerId: q.worker.id, slots: q.worker.slots, types: q.handledTypes(), leaseMs: q.worker.leaseMs, info: q.worker.info,
      })),
    }, syncSubmitLimit());
    for (const q of local) {
      for (const skipped of onBehalf[q.worker.id] || []) q.worker.skip.add(skipped);
    }
    const outcome = outcomeOf(message, MODE_JSON);
    if (outcome.error) throw outcome.error;
    return outcome.value;
  }

  /** submitAsync / run (mode), add (fn): a promise of the result, from whichever machine ran it. */
  enqueue(laneId, commandType, payload, mode, signal, fn) {
    if (this.shuttingDown) return Promise.reject(shuttingDown());
    if (typeof laneId !== 'string') {
      return Promise.reject(new TypeError(`laneId must be a string, got ${typeName(laneId)}`));
    }
    if (signal !== undefined && signal.aborted) {
      return Promise.reject(new LaneError('ERR_LANE_CANCELLED', 'Command was cancelled before it started', { cause: signal.reason }));
    }
    let fnKey = null;
    if (fn !== undefined) {
      if (this.worker === null) {
        return Promise.reject(new LaneError(
          'ERR_LANE_INVALID_ARGUMENT',
          'add() queues a JS function, which only this process can run: in Redis mode it needs this Lane ' +
            'started as a worker (start()); other processes take commands by type (submitAsync/run)',
        ));
      }
      fnKey = String(++this.fnId);
      this.fnJobs.set(fnKey, { fn, label: commandType });
      payload = { fn: fnKey };
      commandType = FN_TYPE_PREFIX + this.worker.id;
    }
    const id = uuidHex();
    const { promise, entry } = this.track(id, mode, fnKey);
    if (signal !== undefined) {
      entry.signal = signal;
      const onAbort = () => this.cancelAborted([entry], signal);
      signal.addEventListener('abort', onAbort, { once: true });
      entry.cleanup = () => signal.removeEventListener('abort', onAbort);
    }
    const text = JSON.stringify(payload) ?? 'null';
    this.ensureResults();
    this.functions()
      .then((fns) => this.submitWithRetry(fns, id, laneId, commandType, text))
      .catch((error) => entry.settleError(error));
    return promise;
  }

  /**
   * A pending command's promise and its entry (settleOk / settleError hand
   * out its outcome once; discard() forgets it: it was never queued).
   */
  track(id, mode, fnKey = null) {
    const entry = new PendingCommand(this, id, mode, fnKey);
    const promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    entry.promise = promise;
    promise.commandId = id;
    this.pending.set(id, entry);
    this.hold();
    return { promise, entry };
  }

  // An aborted signal cancels its commands that have not started.
  cancelAborted(entries, signal) {
    this.functions().then(async (fns) => {
      for (const entry of entries) {
        if (entry.done) continue;
        if (await fns.cancel(entry.id)) {
          entry.settleError(new LaneError('ERR_LANE_CANCELLED', `Command ${entry.id} was cancelled before it started`,
            { cause: signal.reason }));
        }
      }
    }).catch(() => {});
  }

  /**
   * runMany: queues `items` ([commandType, payload JSON text] each) in one
   * lane, in their order, one a3s_submit_many call per SUBMIT_BATCH, each
   * batch whole or not at all. Resolves once every batch is queued with the
   * promises of their results (values, as run()'s); rejects with the first
   * batch that failed (error.queued: the promises of the batches queued
   * before it; the rest were not queued).
   */
  async enqueueMany(laneId, items, signal) {
    if (this.shuttingDown) throw shuttingDown();
    if (signal !== undefined && signal.aborted) {
      throw new LaneError('ERR_LANE_CANCELLED', 'Commands were cancelled before they started', { cause: signal.reason });
    }
    const entries = [];
    const promises = [];
    for (let i = 0; i < items.length; i++) {
      const { promise, entry } = this.track(uuidHex(), MODE_VALUE);
      entry.signal = signal;
      entries.push(entry);
      promises.push(promise);
    }
    let onAbort = null;
    if (signal !== undefined && entries.length) {
      // One listener for the lot (not one per command).
      let open = entries.length;
      onAbort = () => this.cancelAborted(entries, signal);
      signal.addEventListener('abort', onAbort, { once: true });
      const closed = () => {
        if (--open === 0) signal.removeEventListener('abort', onAbort);
      };
      for (const entry of entries) entry.cleanup = closed;
    }
    if (items.length === 0) return promises;
    this.ensureResults();
    let at = 0;
    try {
      const fns = await this.functions();
      for (; at < items.length; at += SUBMIT_BATCH) {
        const batch = [];
        const end = Math.min(at + SUBMIT_BATCH, items.length);
        for (let i = at; i < end; i++) batch.push([entries[i].id, laneId, items[i][0], items[i][1]]);
        await this.submitManyWithRetry(fns, laneId, batch);
      }
    } catch (error) {
      for (let i = at; i < entries.length; i++) entries[i].discard();
      if (error instanceof Error) error.queued = promises.slice(0, at);
      throw error;
    }
    return promises;
  }

  /**
   * runMany with { results: false }: queues `items` as enqueueMany does
   * (same batches, each whole or not at all) but with reply-to '' (no
   * result is delivered anywhere: lanes.lua's deliver() skips '') and
   * nothing tracked here. Resolves with the command ids; rejects with the
   * first batch that failed, or ERR_LANE_CANCELLED if `signal` was aborted
   * before a batch went (error.queued: the ids of the batches queued
   * before it). The signal does nothing once the call resolved.
   */
  async enqueueManyIds(laneId, items, signal) {
    if (this.shuttingDown) throw shuttingDown();
    const ids = new Array(items.length);
    for (let i = 0; i < items.length; i++) ids[i] = uuidHex();
    let at = 0;
    try {
      if (signal !== undefined && signal.aborted) throw cancelledMany(signal);
      if (items.length === 0) return ids;
      const fns = await this.functions();
      for (; at < items.length; at += SUBMIT_BATCH) {
        if (signal !== undefined && signal.aborted) throw cancelledMany(signal);
        const end = Math.min(at + SUBMIT_BATCH, items.length);
        const batch = new Array(end - at);
        for (let i = at; i < end; i++) batch[i - at] = [ids[i], laneId, items[i][0], items[i][1]];
        await this.submitManyWithRetry(fns, laneId, batch, '');
      }
    } catch (error) {
      if (error instanceof Error) error.queued = ids.slice(0, at);
      throw error;
    }
    return ids;
  }

  async submitManyWithRetry(fns, laneId, batch, replyTo = this.clientId) {
    try {
      await fns.submitMany(batch, replyTo);
    } catch (error) {
      if (!(error instanceof LaneError) || error.code !== 'ERR_LANE_NOT_FOUND' ||
          !this.lanes.some((l) => l.laneId === laneId)) {
        throw error;
      }
      await this.registerLanes(fns); // Redis restarted without persistence
      await fns.submitMany(batch, replyTo);
    }
  }

  async submitWithRetry(fns, id, laneId, commandType, text) {
    try {
      await fns.submit(id, laneId, commandType, text, this.clientId);
    } catch (error) {
      if (!(error instanceof LaneError) || error.code !== 'ERR_LANE_NOT_FOUND' ||
          !this.lanes.some((l) => l.laneId === laneId)) {
        throw error;
      }
      // A lane of ours is gone: Redis restarted without persistence.
      await this.registerLanes(fns);
      await fns.submit(id, laneId, commandType, text, this.clientId);
    }
  }

  // One reader of this process's results list serves every promise. It
  // moves them to a list of its own, `<results list>:taken`: every waiting
  // one at once (a3s_take_results, up to TAKE_MOST), or, when none waits,
  // the next one with a blocking BLMOVE; that list is emptied only with the
  // next move, after the results were handed out, so a result whose move
  // went through but whose reply was lost (Redis died) is handed out after
  // the reconnection, not lost. Handing one out twice is harmless.
  async ensureResults() {
    if (this.resultsActive || this.stopped) return;
    this.resultsActive = true;
    const backoff = new Backoff();
    const taken = `${this.resultsKey}:taken`;
    let lost = false;
    let fns = null;
    while (this.resultsActive) {
      let items;
      try {
        if (this.resultsClient === null || !this.resultsClient.isOpen) {
          closeClient(this.resultsClient);
          this.resultsClient = null;
          const opened = await openClient(this.url);
          if (!this.resultsActive) {
            closeClient(opened); // stopped meanwhile
            return;
          }
          this.resultsClient = opened;
          fns = new Functions(opened, this.url, this.queueName);
          if (lost) {
            lost = false;
            this.checkPendingAfterOutage();
          }
        }
        items = await fns.takeResults(this.clientId, TAKE_MOST);
        if (items.length === 0) {
          const [item] = await Promise.all([
            this.resultsClient.sendCommand(['BLMOVE', this.resultsKey, taken, 'LEFT', 'RIGHT', '0']),
            this.resultsClient.sendCommand(['PEXPIRE', taken, String(RESULT_TTL_MS)]),
          ]);
          items = item ? [item] : [];
        }
      } catch (error) {
        if (!this.resultsActive) return;
        if (!isConnectionError(error) && !(error instanceof LaneError)) throw error;
        lost = true;
        if (this.pending.size === 0) {
          // Nobody waits for a result: stop; the next submit starts it again.
          this.resultsActive = false;
          closeClient(this.resultsClient);
          this.resultsClient = null;
          return;
        }
        await sleep(backoff.next());
        continue;
      }
      backoff.reset();
      for (const raw of items) {
        let message;
        try {
          message = JSON.parse(raw);
        } catch {
          continue;
        }
        if (message.sync !== undefined) {
          const resolve = this.syncs.get(message.sync);
          if (resolve) resolve();
          continue;
        }
        this.resolve(message);
      }
    }
  }

  // After Redis came back: a pending command that Redis no longer has and
  // whose result is not in the list (it restarted without its data) will
  // never finish; its promise rejects, saying so.
  async checkPendingAfterOutage() {
    try {
      const fns = await this.functions();
      const ids = [...this.pending.keys()];
      const missing = [];
      for (const id of ids) {
        if (Number(await fns.client.sendCommand(['EXISTS', this.key(`cmd:${id}`)])) === 0) missing.push(id);
      }
      if (missing.length === 0) return;
      // Results are pushed in the same atomic call that deletes the command:
      // whatever finished is in the list ahead of this token.
      const token = uuidHex();
      const done = new Promise((resolve) => this.syncs.set(token, resolve));
      await fns.client.sendCommand(['RPUSH', this.resultsKey, JSON.stringify({ sync: token })]);
      await done;
      this.syncs.delete(token);
      for (const id of missing) {
        const entry = this.pending.get(id);
        if (entry) {
          entry.settleError(new LaneError('ERR_LANE_REDIS',
            `Redis at ${redact(this.url)} lost command ${id} (it restarted without its data); it will not run`));
        }
      }
    } catch {
      // Redis went away again: checked at the next reconnect.
    }
  }

  resolve(message) {
    const entry = this.pending.get(message.id);
    if (entry === undefined) return;
    const outcome = outcomeOf(message, entry.mode);
    if (outcome.error && message.status === 'cancelled' && entry.signal !== undefined && entry.signal.aborted) {
      outcome.error = new LaneError('ERR_LANE_CANCELLED', outcome.error.message, { cause: entry.signal.reason });
    }
    if (outcome.error) entry.settleError(outcome.error);
    else entry.settleOk(outcome.value);
  }

  // ---- cancel, pause ----------------------------------------------------------------------

  cancel(commandId) {
    if (typeof commandId !== 'string' || !/^[0-9a-f]{32}$/.test(commandId)) return false;
    const cancelled = Boolean(this.bridgeCall({ op: 'cancel', id: commandId }));
    if (cancelled) {
      const entry = this.pending.get(commandId);
      if (entry) entry.settleError(new LaneError('ERR_LANE_CANCELLED', `Command ${commandId} was cancelled before it started`));
    }
    return cancelled;
  }

  pauseLane(laneId) {
    this.bridgeCall({ op: 'pause', laneId: checkLaneArg(laneId) });
  }

  resumeLane(laneId) {
    this.bridgeCall({ op: 'resume', laneId: checkLaneArg(laneId) });
  }

  // ---- observation -------------------------------------------------------------------------

  stats() {
    return statsOf(this.bridgeCall({ op: 'stats' }));
  }

  async statsAsync() {
    return statsOf(await (await this.functions()).stats());
  }

  async deadLetters() {
    const letters = await (await this.functions()).deadLetters();
    return letters.map((d) => ({
      commandId: d.command_id,
      commandType: d.command_type,
      laneId: d.lane_id,
      error: d.error,
      attempts: Number(d.attempts),
      failedAt: new Date(Number(d.failed_at_ms)).toISOString(),
      payload: d.payload,
    }));
  }

  emitLocal(key, payload) {
    this.lane._hub.emit(key, payload);
  }

  /** Every process's events, from the queue's stream, from the moment of the call. */
  ensureEvents() {
    if (this.eventsActive || this.stopped) return;
    const start = this.bridgeCall({ op: 'lastEventId' });
    this.eventsActive = true;
    this.readEvents(start);
  }

  async readEvents(lastId) {
    const key = this.key('events');
    const hub = this.lane._hub;
    const backoff = new Backoff();
    while (this.eventsActive) {
      let batch;
      try {
        if (this.eventsClient === null || !this.eventsClient.isOpen) {
          closeClient(this.eventsClient);
          this.eventsClient = null;
          const opened = await openClient(this.url);
          if (!this.eventsActive) {
            closeClient(opened); // stopped meanwhile
            return;
          }
          this.eventsClient = opened;
        }
        batch = await this.eventsClient.sendCommand(['XREAD', 'COUNT', '500', 'BLOCK', '0', 'STREAMS', key, lastId]);
      } catch (error) {
        if (!this.eventsActive) return;
        await sleep(backoff.next());
        continue;
      }
      backoff.reset();
      for (const [, entries] of batch || []) {
        for (const [id, fields] of entries) {
          lastId = String(id);
          const map = {};
          for (let i = 0; i + 1 < fields.length; i += 2) map[String(fields[i])] = String(fields[i + 1]);
          let payload = null;
          try {
            payload = JSON.parse(map.data);
          } catch {
            payload = map.data;
          }
          const [ms, seq] = lastId.split('-').map(Number);
          const at = formatWallTimestamp(ms, Math.min(seq, 999_999));
          // One entry per Lua call: a single event, or key "batch" with the
          // call's events in order ([{key, data}, ...]).
          if (map.key === 'batch' && Array.isArray(payload)) {
            for (const item of payload) {
              if (item && typeof item === 'object') hub.emit(String(item.key), emptyAsObject(item.data), at);
            }
          } else {
            hub.emit(map.key, emptyAsObject(payload), at);
          }
        }
      }
    }
  }
}

function closedWhileDraining() {
  return new LaneError('ERR_LANE_SHUTTING_DOWN', 'the queue was closed while drain() waited');
}

// cjson writes an empty Lua table as {} (or, from older libraries, []).
function emptyAsObject(payload) {
  return Array.isArray(payload) && payload.length === 0 ? {} : payload;
}

// The seed's submit waits for its command as long as it takes, as the
// original did. Tests bound it (A3S_LANE_SYNC_SUBMIT_LIMIT_MS), so a bug
// fails a test instead of hanging it.
function syncSubmitLimit() {
  const limit = Number(process.env.A3S_LANE_SYNC_SUBMIT_LIMIT_MS);
  return limit > 0 ? limit : Infinity;
}

function checkStartOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new LaneError('ERR_LANE_INVALID_ARGUMENT', `start(options): options must be an object, got ${typeName(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'worker' && key !== 'keepAlive') {
      throw new LaneError('ERR_LANE_INVALID_ARGUMENT', `start(options): unknown option '${key}' (options are worker, keepAlive)`);
    }
    if (typeof options[key] !== 'boolean') {
      throw new LaneError('ERR_LANE_INVALID_ARGUMENT', `start(options): ${key} must be a boolean, got ${typeName(options[key])}`);
    }
  }
  return options;
}

function checkLaneArg(laneId) {
  if (typeof laneId !== 'string') throw new TypeError(`laneId must be a string, got ${typeName(laneId)}`);
  return laneId;
}

/** A results-list message as the promise's value or error. */
function outcomeOf(message, mode) {
  switch (message.status) {
    case 'ok': {
      const text = message.result === undefined || message.result === null ? 'null' : String(message.result);
      let value;
      try {
        value = JSON.parse(text);
      } catch (error) {
        return { error: new LaneError('ERR_LANE_INVALID_RESULT', `the result of command ${message.id} is not JSON: ${error.message}`) };
      }
      return { value: mode === MODE_JSON ? JSON.stringify(value) : value };
    }
    case 'cancelled':
      return { error: new LaneError('ERR_LANE_CANCELLED', `Command ${message.id} was cancelled before it started`) };
    case 'timeout':
      return { error: remoteError('ERR_LANE_COMMAND_TIMEOUT', message) };
    default:
      return { error: remoteError('ERR_LANE_COMMAND_FAILED', message) };
  }
}

function remoteError(code, message) {
  const error = new LaneError(code, message.error || (code === 'ERR_LANE_COMMAND_TIMEOUT' ? 'timed out' : 'failed'));
  error.commandId = message.id;
  return error;
}

/** The a3s_stats reply in the Node shape (in-process fields first). */
function statsOf(raw) {
  const lanes = raw.lanes.map((s) => ({
    laneId: s.lane_id,
    priority: Number(s.priority),
    pending: Number(s.pending),
    active: Number(s.active),
    minConcurrency: Number(s.min),
    maxConcurrency: Number(s.max),
    paused: Boolean(s.paused),
    submitted: Number(s.submitted),
    dispatched: Number(s.dispatched),
    completed: Number(s.completed),
    failed: Number(s.failed),
    cancelled: Number(s.cancelled),
    delayed: Number(s.delayed),
    retried: Number(s.retried),
    timedOut: Number(s.timed_out),
    deadLettered: Number(s.dead_lettered),
    requeued: Number(s.requeued),
    throttled: Boolean(s.throttled),
    waiting: s.waiting || '',
  }));
  const workers = raw.workers.map((w) => {
    let types = [];
    try {
      types = JSON.parse(w.types || '[]');
    } catch {
      types = [];
    }
    return {
      workerId: w.worker_id,
      slots: Number(w.slots),
      active: Number(w.active),
      types: Array.isArray(types) ? types : [],
      leaseLeftMs: Number(w.lease_left_ms),
      beatAgeMs: Number(w.beat_age_ms),
      info: w.info || '',
    };
  });
  return {
    totalPending: lanes.reduce((n, s) => n + s.pending, 0),
    totalActive: lanes.reduce((n, s) => n + s.active, 0),
    totalDelayed: Number(raw.delayed),
    deadLetterCount: Number(raw.dead_letters),
    slots: Number(raw.slots),
    lateAcks: Number(raw.late_acks),
    version: Number(raw.version),
    lanes,
    workers,
  };
}

function drainTimeoutMessage(stats, limit) {
  const busy = stats.lanes
    .filter((s) => s.pending || s.active || s.delayed)
    .map((s) => `${s.laneId}: ${s.pending} pending, ${s.active} active${s.delayed ? `, ${s.delayed} delayed` : ''}` +
      `${s.waiting ? ` (${s.waiting})` : ''}`);
  return `drain timed out after ${describeMs(limit)} with ${stats.totalPending} pending, ${stats.totalActive} active ` +
    `and ${stats.totalDelayed} delayed in the Redis queue (${busy.join('; ') || 'finishing'})`;
}

module.exports = { RedisQueue, statsOf, outcomeOf, FN_TYPE_PREFIX, SUBMIT_BATCH };
