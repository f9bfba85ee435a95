'use strict';
// A process's worker in a Redis queue, as pylane/redis/worker.py does it: N
// slots and one claim loop (the "courier") that speaks to Redis for all of
// them. Each claim asks for as many commands as the process has free slots
// (and only then: no prefetch, which keeps priority strict) and carries the
// acks of every command that finished since the last one, so one round trip
// serves many commands under load and one command when idle. What it gets
// runs at once (its JS handler, or an echo of the payload for a type without
// one), up to the slot count at a time; a finished command's ack goes back
// with the next claim, at once (coalesced for up to ACK_COALESCE_MS while
// others still run, when commands lately took less than that). When the
// process has free slots and the last claim found nothing, the courier waits
// for a wake token (one blocking read of the worker's own wake list in
// Redis, BLMPOP taking every token there), the next due time Redis reported
// (a retry's back-off, a rate limit's next token) or a finished command. A
// heartbeat renews the lease every lease / 3 and reaps expired workers.
//
// When Redis cannot be reached, the courier and the wake reader retry with
// back-off (100 ms doubling to 5 s), finished commands' acks are kept until
// they go through, and the outage is emitted locally
// (queue.redis.disconnected / queue.redis.reconnected). A claim that failed
// on the connection may have run in Redis all the same (Redis died before
// its reply went out): its commands are then leased to this worker, which
// does not know them. So after such a failure the next successful claim is
// followed by a look at what Redis says the worker holds (leased:<worker>):
// those it neither runs nor still has to acknowledge are run under their
// lease ("adopted"); none is stranded with a live worker.

const os = require('node:os');
const { debuglog } = require('node:util');
const { randomUUID } = require('node:crypto');
const { LaneError, describeError, describeMs } = require('../errors');
const { isThenable, whenSettled } = require('../jobs');
const { Backoff, openClient, closeClient, redact, isConnectionError } = require('./connection');

const { EVENTS } = require('../events');

const { REDIS_DISCONNECTED, REDIS_RECONNECTED } = EVENTS;

const debug = debuglog('a3s-lane');

// When commands lately took less than this (ms), a finished command's ack
// waits up to this long for the others still running: one claim for all.
const ACK_COALESCE_MS = 0.5;
// How long after another worker's lease runs out a heartbeat reaps it.
const REAP_MARGIN_MS = 5;

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * What a handler gets about its command. The AbortSignal (aborted when the
 * lane's timeout fires) is made on first use: most handlers never look.
 */
class CommandContext {
  constructor(command, workerId) {
    this.laneId = command.lane;
    this.commandType = command.type;
    this.commandId = command.id;
    this.workerId = workerId;
    this._controller = null;
  }

  get signal() {
    if (this._controller === null) this._controller = new AbortController();
    return this._controller.signal;
  }

  abort(reason) {
    if (this._controller !== null) this._controller.abort(reason);
  }
}

function isUnreachable(error) {
  return error instanceof LaneError && error.code === 'ERR_LANE_REDIS_UNREACHABLE';
}

class RedisWorker {
  constructor(owner, slots, leaseMs) {
    this.owner = owner;
    this.slots = slots;
    this.leaseMs = leaseMs;
    this.id = `${os.hostname()}:${process.pid}:${randomUUID().replace(/-/g, '').slice(0, 8)}`;
    this.info = `${os.hostname()} pid ${process.pid}`;
    this.wakeKey = owner.key(`wake:${this.id}`);
    // What the courier, the commands and the wake reader share (one thread:
    // no locks): `acks` (finished commands' acks not yet sent), `sending`
    // (acks in the claim under way), `running` (commands started whose ack
    // is not queued yet), `woken` (a wake token came since the last claim)
    // and `dueAt` (performance.now() of the next due retry or rate token).
    this.acks = [];
    this.sending = 0;
    this.running = 0;
    this.woken = true; // the first claim goes at once
    this.dueAt = Infinity;
    this.dueTimer = null;
    this.recent = Infinity; // how long commands took lately (moving average, ms)
    this.nudge = null; // resolves the courier's wait
    this.claiming = null; // a claim under way: resolves once its reply (or error) is in
    this.claimed = null; // resolves `claiming`
    // The courier's own: what this process holds (claimed, running or acked
    // but unanswered) and whether a claim failed on the connection (its
    // commands may be leased to us all the same: see the top of the file).
    this.held = new Set();
    this.unsure = false;
    this.holding = false; // owner.hold() while something runs or is owed
    this.joinedTypes = [];
    this.stopping = false;
    this.stopped = false;
    this.courier = null;
    this.reader = null;
    this.skip = new Set(); // ids the bridge acknowledged for this worker while the thread waited
    this.blocking = null;
    this.beatTimer = null;
    this.reapTimer = null;
    this.beating = false;
    this.down = false;
    this.stopWaiters = [];
  }

  /** What the worker registers: its handled types, sorted. */
  types() {
    return this.owner.handledTypes();
  }

  /** After the bridge joined it (start() is synchronous): the loops. */
  run() {
    this.joinedTypes = this.types();
    this.courier = this.courierLoop();
    this.reader = this.wakeLoop();
    this.beatTimer = setInterval(() => this.heartbeat(), Math.max(50, this.leaseMs / 3));
    this.beatTimer.unref();
  }

  /** Acks not yet in Redis (queued or in the claim under way). */
  get owed() {
    return this.acks.length + this.sending;
  }

  // ---- outages -----------------------------------------------------------------

  connectionLost(error) {
    if (this.down) return;
    this.down = true;
    this.owner.emitLocal(REDIS_DISCONNECTED, { url: redact(this.owner.url), error: error.message });
  }

  connectionBack() {
    if (!this.down) return;
    this.down = false;
    this.owner.emitLocal(REDIS_RECONNECTED, { url: redact(this.owner.url) });
  }

  // A back-off pause, cut short by stop(); it never keeps the process alive.
  pause(ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopWaiters = this.stopWaiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      this.stopWaiters.push(done);
    });
  }

  // ---- the courier ----------------------------------------------------------------

  /** Tells the courier that something changed (an ack, a token, a due time, stop). */
  poke() {
    const nudge = this.nudge;
    if (nudge !== null) {
      this.nudge = null;
      nudge();
    }
  }

  waitPoke() {
    return new Promise((resolve) => {
      this.nudge = resolve;
    });
  }

  /** Whether the courier has a claim to make now. */
  ready() {
    if (this.acks.length) return true;
    if (this.stopping) return false;
    return this.running < this.slots && (this.woken || this.unsure || performance.now() >= this.dueAt);
  }

  async courierLoop() {
    const backoff = new Backoff();
    let resent = false;
    for (;;) {
      while (!this.ready()) {
        if (this.stopping && this.running === 0) return;
        await this.waitPoke();
      }
      if (this.acks.length && !this.stopping && this.running > 0) {
        // Commands that end within moments of each other (microtasks, the
        // same I/O turn) go in one claim; when commands lately took less than
        // ACK_COALESCE_MS, the others still running are waited for that long.
        await nextTurn();
        if (this.recent < ACK_COALESCE_MS) {
          const end = performance.now() + ACK_COALESCE_MS;
          while (this.running > 0 && !this.stopping && performance.now() < end) await nextTurn();
        }
      }
      const stopping = this.stopping;
      const free = stopping ? 0 : this.slots - this.running;
      const acks = this.acks;
      this.acks = [];
      this.sending = acks.length;
      this.woken = false;
      this.clearDue();
      let reply;
      try {
        const fns = await this.owner.functions();
        this.claiming = new Promise((resolve) => {
          this.claimed = resolve;
        });
        reply = await fns.claim(this.id, free, acks);
        this.claimEnded();
      } catch (error) {
        this.claimEnded();
        this.sending = 0;
        if (acks.length) this.acks = acks.concat(this.acks); // kept until they go through
        this.woken = true; // and a claim tried again after the back-off
        if (isUnreachable(error)) {
          this.unsure = true;
          this.connectionLost(error);
          if (stopping) return; // the lease runs out and the commands run again elsewhere
          resent = resent || acks.length > 0;
        } else {
          process.emitWarning(`a3s-lane worker ${this.id}: claim failed: ${describeError(error)}; retrying`,
            { type: 'LaneWarning', code: 'A3S_LANE_REDIS_CLAIM' });
          if (stopping) return;
        }
        await this.pause(backoff.next());
        continue;
      }
      this.sending = 0;
      backoff.reset();
      this.connectionBack();
      for (const ack of acks) this.held.delete(ack.id);
      if (reply.rejected.length) this.logRejected(reply.rejected, resent);
      resent = false;
      if (!reply.known && !stopping) {
        await this.rejoin();
        this.woken = true;
        continue;
      }
      this.startClaimed(reply, free);
      if (this.unsure) {
        for (const command of await this.findOrphans()) this.execute(command);
      }
      this.updateHold();
    }
  }

  claimEnded() {
    if (this.claiming === null) return;
    this.claiming = null;
    this.claimed();
  }

  /** Runs what a claim handed out; waits for the next due time Redis reported. */
  startClaimed(reply, free) {
    let started = 0;
    for (const command of reply.claimed) {
      if (this.skip.delete(command.id)) continue;
      this.held.add(command.id);
      this.execute(command);
      started++;
    }
    if (reply.next_due && started < free) {
      this.setDue(Math.max(1, Number(reply.next_due) - Number(reply.now) + 1));
    }
  }

  logRejected(rejected, resent) {
    for (const id of rejected) {
      if (resent) {
        debug('the result of command %s was refused when sent again: the first attempt went ' +
          'through before the connection broke', id);
      } else {
        process.emitWarning(`a3s-lane worker ${this.id}: the result of command ${id} was refused: its ` +
          'lease had moved (the command was given to another worker)', { type: 'LaneWarning', code: 'A3S_LANE_LATE_ACK' });
      }
    }
  }

  setDue(waitMs) {
    const at = performance.now() + waitMs;
    if (at >= this.dueAt) return;
    this.clearDue();
    this.dueAt = at;
    this.dueTimer = setTimeout(() => {
      this.dueTimer = null;
      this.dueAt = 0; // due now (a timer may fire a fraction of a ms before performance.now() says so)
      this.poke();
    }, waitMs);
    this.dueTimer.unref();
  }

  clearDue() {
    this.dueAt = Infinity;
    if (this.dueTimer !== null) {
      clearTimeout(this.dueTimer);
      this.dueTimer = null;
    }
  }

  /** The process stays alive while a command runs here or its ack is owed. */
  updateHold() {
    const busy = this.running > 0 || this.owed > 0;
    if (busy === this.holding) return;
    this.holding = busy;
    if (busy) this.owner.hold();
    else this.owner.release();
  }

  // ---- the wake reader --------------------------------------------------------------

  // One blocking read of the wake list for the whole process: it takes every
  // token there at once (one claim serves every free slot) and tells the courier.
  // The worker joins as "direct": a submit that finds it idle leases it the
  // commands itself and leaves their records in the list instead of tokens;
  // those start here, as they are read, with no claim round trip.
  // The next blocking read goes out once the claim that the wake-up started
  // is answered, not before it: a woken command's start waits for the wake
  // reply, the claim and its reply, and a write to Redis in between (the
  // read's own) is one more moment at which the OS may run something else
  // (Redis, woken by that write) on this process's CPU, for milliseconds on
  // a busy machine. Tokens that come meanwhile wait in the list; the read
  // takes them at once.
  async wakeLoop() {
    const backoff = new Backoff();
    const count = String(this.slots + 1);
    while (!this.stopping) {
      try {
        if (this.blocking === null || !this.blocking.isOpen) {
          closeClient(this.blocking);
          this.blocking = null;
          const opened = await openClient(this.owner.url);
          if (this.stopping) {
            closeClient(opened); // stop() ran meanwhile
            return;
          }
          this.blocking = opened;
        }
        const popped = await this.blocking.sendCommand(['BLMPOP', '0', '1', this.wakeKey, 'LEFT', 'COUNT', count]);
        backoff.reset();
        if (!this.startPushed(popped ? popped[1] : [])) continue; // records only: no claim
      } catch (error) {
        if (this.stopping) return;
        // The read may have taken records whose reply was lost: the next
        // claim looks for commands leased to this worker unseen.
        this.unsure = true;
        if (!isConnectionError(error) && !(error instanceof LaneError)) {
          process.emitWarning(`a3s-lane worker ${this.id}: waiting for wake-ups failed: ${describeError(error)}; retrying`,
            { type: 'LaneWarning', code: 'A3S_LANE_REDIS_WAKE' });
        } else {
          this.connectionLost(error);
        }
        await this.pause(backoff.next());
        // the courier tries a claim again (and backs off while Redis is away)
      }
      this.woken = true;
      this.poke();
      // The courier starts its claim in the microtasks poke() queued (within
      // this turn, unless it coalesces acks first); wait for its reply.
      await nextTurn();
      if (this.claiming !== null) await this.claiming;
    }
  }

  /**
   * Starts the command records among what a wake read took (commands a
   * submit leased to this worker); true when there were tokens too (the
   * courier claims). A stopping worker starts none: leave() puts them back.
   */
  startPushed(items) {
    let tokens = false;
    for (const item of items) {
      const text = String(item);
      if (text.charCodeAt(0) !== 123 /* { */) {
        tokens = true;
        continue;
      }
      const command = JSON.parse(text);
      // One adopted meanwhile as an orphan, or acknowledged by the bridge
      // while the main thread waited, is not started (again).
      if (this.stopping || this.held.has(command.id) || this.skip.delete(command.id)) continue;
      this.held.add(command.id);
      this.execute(command);
    }
    this.updateHold();
    return tokens || items.length === 0;
  }

  // ---- adopting orphans ---------------------------------------------------------------

  /**
   * After a claim failed on the connection: the commands leased to this
   * worker in Redis that it does not hold, to run (pylane's _find_orphans).
   */
  async findOrphans() {
    this.unsure = false;
    const found = [];
    try {
      const fns = await this.owner.functions();
      const leased = await fns.client.sendCommand(['SMEMBERS', fns.key(`leased:${this.id}`)]);
      // Records still in the wake list are not orphans: the wake read takes
      // them (one taken meanwhile is in `held` by then, or is skipped there).
      const waiting = new Set();
      for (const item of await fns.client.sendCommand(['LRANGE', this.wakeKey, '0', '-1'])) {
        const text = String(item);
        if (text.charCodeAt(0) === 123) waiting.add(JSON.parse(text).id);
      }
      const missing = leased.map(String)
        .filter((id) => !this.held.has(id) && !this.skip.has(id) && !waiting.has(id)).sort();
      for (const id of missing) {
        const command = await this.orphan(fns, id);
        if (command === null) continue;
        process.emitWarning(`a3s-lane worker ${this.id}: command ${id} was leased to it by a claim whose ` +
          'reply was lost; running it', { type: 'LaneWarning', code: 'A3S_LANE_ADOPTED' });
        this.held.add(id);
        found.push(command);
      }
    } catch (error) {
      if (isUnreachable(error) || isConnectionError(error)) {
        this.unsure = true; // look again once Redis answers
      } else {
        process.emitWarning(`a3s-lane worker ${this.id}: looking for commands leased to it failed: ` +
          `${describeError(error)}`, { type: 'LaneWarning', code: 'A3S_LANE_REDIS_ADOPT' });
      }
    }
    return found;
  }

  /** The command as a claim hands it out, if it still runs under this worker's lease. */
  async orphan(fns, id) {
    const fields = await fns.client.sendCommand(['HMGET', fns.key(`cmd:${id}`), 'lane', 'type', 'payload', 'lease', 'state', 'worker']);
    const [lane, type, payload, lease, state, worker] = fields.map((v) => (v === null || v === undefined ? null : String(v)));
    if (state !== 'running' || worker !== this.id || lane === null) return null;
    const config = await fns.client.sendCommand(['HGET', fns.key('config'), lane]);
    let timeoutMs;
    try {
      timeoutMs = config ? JSON.parse(String(config)).timeout_ms : undefined;
    } catch {
      timeoutMs = undefined;
    }
    return { id, lane, type, payload, lease, timeout_ms: timeoutMs };
  }

  // ---- running a command -------------------------------------------------------------

  /** Runs one claimed command; its ack is queued for the courier when it ends. */
  execute(command) {
    this.running++;
    const began = performance.now();
    let settled = false;
    let timer = null;
    const done = (status, value) => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      this.finished(command, began, status, value);
    };
    try {
      const payload = JSON.parse(command.payload);
      const handler = this.owner.handlerFor(command.type);
      if (handler === null) {
        done('ok', payload);
        return;
      }
      const context = new CommandContext(command, this.id);
      if (command.timeout_ms) {
        const limit = Number(command.timeout_ms);
        timer = setTimeout(() => {
          context.abort(new LaneError('ERR_LANE_COMMAND_TIMEOUT', `timed out after ${describeMs(limit)}`));
          done('timeout', `CommandTimeoutError: command ${command.id} timed out after ${describeMs(limit)}`);
        }, limit);
      }
      const result = handler(payload, context);
      if (isThenable(result)) {
        whenSettled(result, (value) => done('ok', value), (error) => done('error', describeError(error)));
        return;
      }
      done('ok', result);
    } catch (error) {
      done('error', describeError(error));
    }
  }

  finished(command, began, status, value) {
    const ack = { id: command.id, lease: command.lease, status };
    if (status === 'ok') {
      let text;
      try {
        text = JSON.stringify(value);
      } catch (error) {
        ack.status = 'error';
        ack.error = `LaneError: result of '${command.type}' is not JSON-serialisable: ${error.message}`;
      }
      if (ack.status === 'ok') ack.result = text === undefined ? 'null' : text;
    } else {
      ack.error = value;
    }
    const took = performance.now() - began;
    this.recent = this.recent === Infinity ? took : 0.8 * this.recent + 0.2 * took;
    this.acks.push(ack);
    this.running--;
    this.poke();
  }

  // ---- the lease -------------------------------------------------------------------

  async join() {
    const types = this.types();
    const fns = await this.owner.functions();
    await fns.join(this.id, this.slots, types, this.leaseMs, this.info, undefined, true);
    this.joinedTypes = types;
  }

  async rejoin() {
    try {
      await this.join();
    } catch (error) {
      if (isUnreachable(error)) this.connectionLost(error);
      await this.pause(new Backoff().next());
    }
  }

  async heartbeat() {
    if (this.stopping || this.beating) return;
    this.beating = true;
    try {
      const fns = await this.owner.functions();
      const { known } = await fns.heartbeat(this.id, this.leaseMs);
      this.connectionBack();
      const types = this.types();
      if (!known || types.join('\n') !== this.joinedTypes.join('\n')) await this.join();
      else this.beatAtNextExpiry(fns);
    } catch (error) {
      if (isUnreachable(error)) this.connectionLost(error);
    } finally {
      this.beating = false;
    }
  }

  /**
   * When another worker's lease runs out before this worker's next beat,
   * beats REAP_MARGIN_MS after it (that beat reaps it): a dead worker's
   * commands go back within its lease, not up to a beat interval later.
   * Read relative to this worker's own expiry, just renewed: no clock is
   * compared across machines.
   */
  async beatAtNextExpiry(fns) {
    const workers = fns.key('workers');
    const [earliest, mine] = await Promise.all([
      fns.client.sendCommand(['ZRANGE', workers, '0', '0', 'WITHSCORES']),
      fns.client.sendCommand(['ZSCORE', workers, this.id]),
    ]);
    if (this.stopping || !earliest || earliest.length < 2 || mine === null) return;
    if (String(earliest[0]) === this.id) return;
    const nowMs = Number(mine) - this.leaseMs;
    const wait = Math.max(0, Number(earliest[1]) - nowMs) + REAP_MARGIN_MS;
    if (wait >= this.leaseMs / 3) return; // the regular beat comes first
    clearTimeout(this.reapTimer);
    this.reapTimer = setTimeout(() => this.heartbeat(), wait);
    this.reapTimer.unref();
  }

  // ---- stopping ------------------------------------------------------------------------

  /**
   * Claims nothing more; running commands finish and are acknowledged; then
   * the worker leaves the queue (what it still holds goes back to the front
   * of its lane). Bounded by `timeoutMs`.
   */
  async stop(timeoutMs = 10_000) {
    if (this.stopped) return;
    this.stopping = true;
    clearInterval(this.beatTimer);
    clearTimeout(this.reapTimer);
    this.clearDue();
    for (const waiter of this.stopWaiters.splice(0)) waiter();
    this.poke();
    closeClient(this.blocking); // ends the wake reader's blocking read
    this.blocking = null;
    let timer;
    await Promise.race([
      Promise.all([this.courier, this.reader]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.stopped = true;
    try {
      const fns = await this.owner.functions();
      await fns.leave(this.id);
    } catch (error) {
      process.emitWarning(`a3s-lane worker ${this.id} could not leave the queue cleanly: ${describeError(error)}`,
        { type: 'LaneWarning', code: 'A3S_LANE_REDIS_LEAVE' });
    }
    if (this.holding) {
      this.holding = false;
      this.owner.release();
    }
  }

  /**
   * True when a synchronous submit could need this thread's event loop: JS
   * handlers, commands running, or acks not yet written to Redis. (Acks of a
   * claim under way are on the wire: Redis applies them without this
   * thread; what that claim hands out is leased to this worker, and the
   * bridge answers it on the worker's behalf, see bridge-thread.js.)
   */
  usesEventLoop() {
    return this.owner.hasHandlers() || this.running > 0 || this.acks.length > 0;
  }
}

module.exports = { RedisWorker, REDIS_DISCONNECTED, REDIS_RECONNECTED, ACK_COALESCE_MS };
