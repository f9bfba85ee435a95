'use strict';
// Events: their keys, their timestamps, and the EventHub that buffers them
// and delivers them to subscribers from a setImmediate batch, so a
// subscriber never runs inside a submit or on the dispatch path.

const { performance } = require('node:perf_hooks');
const { describeError, typeName } = require('./errors');

const EVENTS = Object.freeze({
  COMMAND_SUBMITTED: 'queue.command.submitted',
  COMMAND_STARTED: 'queue.command.started',
  COMMAND_COMPLETED: 'queue.command.completed',
  COMMAND_FAILED: 'queue.command.failed',
  COMMAND_CANCELLED: 'queue.command.cancelled',
  SHUTDOWN_STARTED: 'queue.shutdown.started',
  SHUTDOWN_COMPLETE: 'queue.shutdown.complete',
  // Redis mode: from the queue's stream (every process), the last two local.
  COMMAND_RETRY: 'queue.command.retry',
  COMMAND_TIMEOUT: 'queue.command.timeout',
  COMMAND_DEAD_LETTERED: 'queue.command.dead_lettered',
  COMMAND_REQUEUED: 'queue.command.requeued',
  WORKER_JOINED: 'queue.worker.joined',
  WORKER_LEFT: 'queue.worker.left',
  WORKER_LOST: 'queue.worker.lost',
  REDIS_DISCONNECTED: 'queue.redis.disconnected',
  REDIS_RECONNECTED: 'queue.redis.reconnected',
});

// ---- time ------------------------------------------------------------------

// Event times come from the monotonic clock, anchored once to the wall
// clock, so they never go backwards; printed as RFC 3339 UTC with
// nanoseconds ("2026-11-24T09:51:05.522257781+00:00"), as the Python package
// and the original SDK print them.
const ORIGIN_SECONDS = Math.floor(performance.timeOrigin / 1000);
const ORIGIN_NANOS = Math.round((performance.timeOrigin - ORIGIN_SECONDS * 1000) * 1e6);

// A wall-clock time in whole ms plus `extraNanos` (< 1e6): a Redis stream
// entry's id (ms-seq), in the same format.
function formatWallTimestamp(wallMs, extraNanos = 0) {
  const nanos = (wallMs % 1000) * 1e6 + extraNanos;
  return `${new Date(wallMs).toISOString().slice(0, 19)}.${String(nanos).padStart(9, '0')}+00:00`;
}

function formatTimestamp(nowMs) {
  const totalNanos = ORIGIN_NANOS + Math.round(nowMs * 1e6);
  const seconds = ORIGIN_SECONDS + Math.floor(totalNanos / 1e9);
  const nanos = totalNanos % 1e9;
  return `${new Date(seconds * 1000).toISOString().slice(0, 19)}.${String(nanos).padStart(9, '0')}+00:00`;
}

// ---- records, subscriptions, buffer -----------------------------------------

class EventRecord {
  constructor(seq, key, payload, stamp) {
    this.seq = seq;
    this.key = key;
    this.payload = payload;
    this.time = performance.now();
    // Set for events read back from Redis: the time their stream entry has.
    this.stamp = stamp;
  }
}

/** A subscriber's handle; `unsubscribe()` stops further deliveries. */
class Subscription {
  constructor(hub, callback, keys, fromSeq) {
    this._hub = hub;
    this._callback = callback;
    this._keys = keys;
    this._fromSeq = fromSeq;
    this._closed = false;
    this.callbackErrors = 0;
  }

  get closed() {
    return this._closed;
  }

  unsubscribe() {
    if (this._closed) return;
    this._closed = true;
    this._hub.remove(this);
  }

  close() {
    this.unsubscribe();
  }
}

// Events waiting for delivery; past `capacity` the oldest is dropped.
class EventBuffer {
  constructor(capacity) {
    this.capacity = capacity;
    this.items = [];
    this.head = 0;
    this.dropped = 0;
  }

  get size() {
    return this.items.length - this.head;
  }

  push(record) {
    this.items.push(record);
    if (this.items.length - this.head > this.capacity) {
      this.items[this.head++] = undefined;
      this.dropped++;
      if (this.head >= 4096 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    }
  }

  take() {
    const batch = this.head ? this.items.slice(this.head) : this.items;
    this.items = [];
    this.head = 0;
    return batch;
  }
}

// ---- the hub -------------------------------------------------------------------

// One per queue: its subscriptions, the events waiting for delivery, and the
// delivery itself. Only events some subscriber wants are recorded;
// `listening` is false while nobody subscribes, so the dispatch path can
// skip building event payloads altogether.
class EventHub {
  constructor(capacity) {
    this.subs = [];
    this.wantAll = false;
    this.wantKeys = null;
    this.listening = false; // wantAll || wantKeys !== null
    this.seq = 0;
    this.buffer = new EventBuffer(capacity);
    this.deliveryQueued = false;
    this.flushWaiters = [];
    this.dropWarned = false;
    this.deliverTask = () => this.deliver();
  }

  /** Events dropped because more than `capacity` waited for delivery. */
  get dropped() {
    return this.buffer.dropped;
  }

  // `keys` is a Set of event keys, or null for every event.
  subscribe(callback, keys) {
    if (typeof callback !== 'function') {
      throw new TypeError(`the subscriber callback must be a function, got ${typeName(callback)}`);
    }
    const subscription = new Subscription(this, callback, keys, this.seq + 1);
    this.subs = [...this.subs, subscription];
    this.recomputeWanted();
    return subscription;
  }

  remove(subscription) {
    this.subs = this.subs.filter((s) => s !== subscription);
    this.recomputeWanted();
  }

  // Ends every subscription (after queue.shutdown.complete is delivered).
  closeAll() {
    for (const sub of this.subs) sub._closed = true;
    this.subs = [];
    this.recomputeWanted();
  }

  recomputeWanted() {
    let all = false;
    let keys = null;
    for (const s of this.subs) {
      if (s._keys === null) {
        all = true;
        break;
      }
      keys = keys || new Set();
      for (const key of s._keys) keys.add(key);
    }
    this.wantAll = all;
    this.wantKeys = all ? null : keys;
    this.listening = this.wantAll || this.wantKeys !== null;
  }

  // `stamp` (optional): the event's timestamp string, for events that
  // happened elsewhere (read back from Redis).
  emit(key, payload, stamp) {
    if (!this.wantAll && (this.wantKeys === null || !this.wantKeys.has(key))) return;
    this.buffer.push(new EventRecord(++this.seq, key, payload, stamp));
    if (this.buffer.dropped && !this.dropWarned) {
      this.dropWarned = true;
      process.emitWarning(
        `more than ${this.buffer.capacity} events waited for delivery; the oldest are being ` +
          'dropped (see lane.droppedEvents; raise the eventCapacity option)',
        { type: 'LaneWarning', code: 'A3S_LANE_EVENTS_DROPPED' },
      );
    }
    if (!this.deliveryQueued) {
      this.deliveryQueued = true;
      setImmediate(this.deliverTask);
    }
  }

  deliver() {
    this.deliveryQueued = false;
    const batch = this.buffer.take();
    const subs = this.subs;
    let failures = null;
    for (const record of batch) {
      const event = Object.freeze({
        key: record.key,
        payload: JSON.stringify(record.payload),
        timestamp: record.stamp === undefined ? formatTimestamp(record.time) : record.stamp,
      });
      for (const sub of subs) {
        if (sub._closed || record.seq < sub._fromSeq) continue;
        if (sub._keys !== null && !sub._keys.has(record.key)) continue;
        try {
          sub._callback(null, event);
        } catch (error) {
          sub.callbackErrors++;
          failures = failures || new Map();
          const seen = failures.get(sub);
          if (seen) seen.count++;
          else failures.set(sub, { key: record.key, error, count: 1 });
        }
      }
    }
    if (failures !== null) {
      for (const { key, error, count } of failures.values()) {
        const more = count > 1 ? ` (and ${count - 1} more times in this batch)` : '';
        process.emitWarning(
          `an event subscriber threw on ${key}: ${describeError(error)}${more}; it stays subscribed`,
          { type: 'LaneWarning', code: 'A3S_LANE_SUBSCRIBER_ERROR' },
        );
      }
    }
    const waiters = this.flushWaiters;
    if (waiters.length) {
      this.flushWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  // Resolves once the events emitted so far have been delivered.
  flush() {
    if (!this.deliveryQueued) return Promise.resolve();
    return new Promise((resolve) => this.flushWaiters.push(resolve));
  }
}

module.exports = {
  EVENTS,
  EventHub,
  formatWallTimestamp,
};
