'use strict';
// A process's worker in a Redis queue, as pylane/redis/worker.py does it:
// N slots, each claiming one command at a time (only when it is free: no
// prefetch), running it (its JS handler, or an echo of the payload for a
// type without one) and acknowledging it inside its next claim: one round
// trip per command. Idle slots wait on the worker's own wake list in Redis
// (one blocking read for all of them); one timer waits for the next due time
// Redis reported (a retry's back-off, a rate limit's next token). A
// heartbeat renews the lease every lease / 3 and reaps expired workers.
//
// When Redis cannot be reached every loop retries with back-off (100 ms
// doubling to 5 s), a finished command's ack is kept until it goes through,
// and the outage is emitted locally (queue.redis.disconnected /
// queue.redis.reconnected).

const os = require('node:os');
const { randomUUID } = require('node:crypto');
const { LaneError, describeError, describeMs } = require('../errors');
const { isThenable, whenSettled } = require('../jobs');
const { Backoff, openClient, closeClient, redact, isConnectionError } = require('./connection');

const { EVENTS } = require('../events');

const { REDIS_DISCONNECTED, REDIS_RECONNECTED } = EVENTS;

class RedisWorker {
  constructor(owner, slots, leaseMs) {
    this.owner = owner;
    this.slots = slots;
    this.leaseMs = leaseMs;
    this.id = `${os.hostname()}:${process.pid}:${randomUUID().replace(/-/g, '').slice(0, 8)}`;
    this.info = `${os.hostname()} pid ${process.pid}`;
    this.wakeKey = owner.key(`wake:${this.id}`);
    this.running = 0; // commands this process runs now
    this.owed = 0; // acks of finished commands not yet in Redis
    this.joinedTypes = [];
    this.stopping = false;
    this.stopped = false;
    this.loops = [];
    this.idle = []; // resolvers of idle slots
    this.tokens = 0; // wake tokens read while no slot was idle
    this.skip = new Set(); // ids the bridge acknowledged for this worker while the thread waited
    this.blocking = null;
    this.readerActive = false;
    this.readerNudge = null;
    this.dueTimer = null;
    this.dueAt = Infinity;
    this.beatTimer = null;
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
    for (let n = 0; n < this.slots; n++) this.loops.push(this.slotLoop());
    this.beatTimer = setInterval(() => this.heartbeat(), Math.max(50, this.leaseMs / 3));
    this.beatTimer.unref();
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

  // ---- one slot -------------------------------------------------------------------

  async slotLoop() {
    let ack = null;
    const backoff = new Backoff();
    for (;;) {
      const stopping = this.stopping;
      let reply;
      try {
        const fns = await this.owner.functions();
        reply = await fns.claim(this.id, stopping ? 0 : 1, ack ? [ack] : []);
      } catch (error) {
        if (error instanceof LaneError && error.code === 'ERR_LANE_REDIS_UNREACHABLE') {
          this.connectionLost(error);
          if (stopping) return; // the lease runs out and the command runs again elsewhere
        } else {
          process.emitWarning(`a3s-lane worker ${this.id}: claim failed: ${describeError(error)}; retrying`,
            { type: 'LaneWarning', code: 'A3S_LANE_REDIS_CLAIM' });
          if (stopping) return;
        }
        await this.pause(backoff.next());
        continue;
      }
      backoff.reset();
      this.connectionBack();
      if (ack !== null) this.owed--;
      ack = null;
      if (!reply.known && !stopping) {
        await this.rejoin();
        continue;
      }
      const claimed = reply.claimed.filter((c) => !this.skip.delete(c.id));
      if (claimed.length) {
        ack = await this.execute(claimed[0]);
        this.owed++; // until the claim carrying it goes through
        continue;
      }
      if (stopping) return;
      await this.waitIdle(reply);
    }
  }

  /** Blocks until a wake token, the next due time, or stop. */
  waitIdle(reply) {
    if (this.tokens > 0) {
      this.tokens--;
      return Promise.resolve();
    }
    if (this.stopping) return Promise.resolve();
    const woken = new Promise((resolve) => this.idle.push(resolve));
    if (reply.next_due) {
      const wait = Math.max(1, Number(reply.next_due) - Number(reply.now) + 1);
      const at = Date.now() + wait;
      if (at < this.dueAt) {
        if (this.dueTimer !== null) clearTimeout(this.dueTimer);
        this.dueAt = at;
        this.dueTimer = setTimeout(() => {
          this.dueTimer = null;
          this.dueAt = Infinity;
          this.wakeOne();
        }, wait);
        this.dueTimer.unref();
      }
    }
    this.readWake();
    return woken;
  }

  wakeOne() {
    const resolve = this.idle.shift();
    if (resolve) resolve();
    return resolve !== undefined;
  }

  wakeAll() {
    const idle = this.idle;
    this.idle = [];
    for (const resolve of idle) resolve();
  }

  // One blocking read of the wake list serves every idle slot.
  async readWake() {
    if (this.readerNudge) {
      const nudge = this.readerNudge;
      this.readerNudge = null;
      nudge();
    }
    if (this.readerActive) return;
    this.readerActive = true;
    const backoff = new Backoff();
    try {
      while (!this.stopping) {
        if (this.idle.length === 0) {
          await new Promise((resolve) => {
            this.readerNudge = resolve;
          });
          continue;
        }
        let item;
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
          item = await this.blocking.sendCommand(['BLPOP', this.wakeKey, '0']);
        } catch (error) {
          if (this.stopping) return;
          if (isConnectionError(error) || error instanceof LaneError) {
            this.connectionLost(error);
            await this.pause(backoff.next());
            this.wakeAll(); // each slot claims again (and backs off while Redis is away)
            continue;
          }
          throw error;
        }
        backoff.reset();
        if (item && !this.wakeOne()) this.tokens++;
      }
    } finally {
      this.readerActive = false;
    }
  }

  // ---- running a command -------------------------------------------------------------

  execute(command) {
    this.running++;
    this.owner.hold();
    const ack = { id: command.id, lease: command.lease };
    const finish = (status, value) => {
      this.running--;
      this.owner.release();
      if (status === 'ok') {
        let text;
        try {
          text = JSON.stringify(value);
        } catch (error) {
          return Object.assign(ack, { status: 'error', error: `LaneError: result of '${command.type}' is not JSON-serialisable: ${error.message}` });
        }
        return Object.assign(ack, { status: 'ok', result: text === undefined ? 'null' : text });
      }
      return Object.assign(ack, { status, error: value });
    };
    return new Promise((resolve) => {
      let settled = false;
      let timer = null;
      const controller = new AbortController();
      const done = (status, value) => {
        if (settled) return;
        settled = true;
        if (timer !== null) clearTimeout(timer);
        resolve(finish(status, value));
      };
      let result;
      try {
        const payload = JSON.parse(command.payload);
        const handler = this.owner.handlerFor(command.type);
        if (command.timeout_ms) {
          const limit = Number(command.timeout_ms);
          timer = setTimeout(() => {
            controller.abort(new LaneError('ERR_LANE_COMMAND_TIMEOUT', `timed out after ${describeMs(limit)}`));
            done('timeout', `CommandTimeoutError: command ${command.id} timed out after ${describeMs(limit)}`);
          }, limit);
        }
        const context = {
          laneId: command.lane,
          commandType: command.type,
          commandId: command.id,
          signal: controller.signal,
          workerId: this.id,
        };
        result = handler === null ? payload : handler(payload, context);
        if (isThenable(result)) {
          whenSettled(result, (value) => done('ok', value), (error) => done('error', describeError(error)));
          return;
        }
      } catch (error) {
        done('error', describeError(error));
        return;
      }
      done('ok', result);
    });
  }

  // ---- the lease -------------------------------------------------------------------

  async join() {
    const types = this.types();
    const fns = await this.owner.functions();
    await fns.join(this.id, this.slots, types, this.leaseMs, this.info);
    this.joinedTypes = types;
  }

  async rejoin() {
    try {
      await this.join();
    } catch (error) {
      if (error instanceof LaneError && error.code === 'ERR_LANE_REDIS_UNREACHABLE') this.connectionLost(error);
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
    } catch (error) {
      if (error instanceof LaneError && error.code === 'ERR_LANE_REDIS_UNREACHABLE') this.connectionLost(error);
    } finally {
      this.beating = false;
    }
  }

  // ---- stopping ------------------------------------------------------------------------

  /**
   * Slots finish their command, acknowledge it and end; then the worker
   * leaves the queue (what it still holds goes back to the front of its
   * lane). Bounded by `timeoutMs`.
   */
  async stop(timeoutMs = 10_000) {
    if (this.stopped) return;
    this.stopping = true;
    clearInterval(this.beatTimer);
    if (this.dueTimer !== null) clearTimeout(this.dueTimer);
    for (const waiter of this.stopWaiters.splice(0)) waiter();
    this.wakeAll();
    if (this.readerNudge) this.readerNudge();
    closeClient(this.blocking);
    this.blocking = null;
    let timer;
    await Promise.race([
      Promise.all(this.loops),
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
  }

  /** True when a synchronous submit could need this thread's event loop. */
  usesEventLoop() {
    return this.owner.hasHandlers() || this.running > 0 || this.owed > 0;
  }
}

module.exports = { RedisWorker, REDIS_DISCONNECTED, REDIS_RECONNECTED };
