'use strict';
// Shared test helpers. Nothing here sleeps: waits are on promises, events or
// event-loop turns, each bounded by a timeout that fails the test.

const { setImmediate: immediate } = require('node:timers/promises');

/** A promise with its resolve/reject exposed. */
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects if `promise` has not settled within `ms`. */
function within(promise, ms = 10_000, what = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Lets every queued microtask and one event-loop turn run. */
async function turn(times = 1) {
  for (let i = 0; i < times; i++) await immediate();
}

/** Subscribes and collects events; `waitFor(pred)` resolves when one matches. */
function collect(lane, keys) {
  const events = [];
  const waiters = [];
  const callback = (err, event) => {
    events.push(event);
    for (const waiter of [...waiters]) {
      if (waiter.pred(event)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(event);
      }
    }
  };
  const subscription = keys ? lane.subscribeFiltered(keys, callback) : lane.subscribe(callback);
  return {
    events,
    subscription,
    keys: () => events.map((e) => e.key),
    waitFor(pred, ms = 10_000) {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      const d = deferred();
      waiters.push({ pred, resolve: d.resolve });
      return within(d.promise, ms, 'waiting for an event');
    },
  };
}

/** Deterministic PRNG (mulberry32). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The events of an XRANGE reply on a queue's stream, in order: an entry is
// one event ([key, data]) or a Lua call's several (key "batch", data a list
// of {key, data}).
function streamEvents(entries) {
  const out = [];
  for (const [, fields] of entries) {
    const map = {};
    for (let i = 0; i + 1 < fields.length; i += 2) map[String(fields[i])] = String(fields[i + 1]);
    const data = JSON.parse(map.data);
    if (map.key === 'batch') for (const item of data) out.push({ key: item.key, data: item.data });
    else out.push({ key: map.key, data });
  }
  return out;
}

module.exports = { deferred, within, turn, collect, rng, streamEvents };
