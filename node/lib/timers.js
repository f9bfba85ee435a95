'use strict';
// Timers for durations the caller gives: checked (a LaneError naming the
// argument), and longer than setTimeout allows. Node clamps a delay above
// 2^31 - 1 ms to 1 ms (with a TimeoutOverflowWarning); a long timeout here
// is a chain of timers of at most that length instead, so it waits as long
// as asked. Infinity means no timer at all.

const { performance } = require('node:perf_hooks');
const { LaneError, typeName } = require('./errors');

/** The largest delay setTimeout honours (about 24.8 days). */
const MAX_TIMER_DELAY = 2 ** 31 - 1;

function describeValue(value) {
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  if (typeof value === 'function') return 'function';
  if (typeof value === 'symbol') return 'symbol';
  if (value !== null && typeof value === 'object') return typeName(value);
  return `${typeName(value)} ${String(value)}`;
}

/**
 * `value` as a duration in milliseconds, or `undefined` for no limit
 * (undefined, null or Infinity). Anything but a non-negative number is a
 * LaneError (ERR_LANE_INVALID_ARGUMENT) naming `name`, e.g.
 * "drain(timeoutMs): timeoutMs must be …".
 */
function checkDuration(value, name, where) {
  if (value === undefined || value === null || value === Infinity) return undefined;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new LaneError(
      'ERR_LANE_INVALID_ARGUMENT',
      `${where}: ${name} must be a non-negative number of milliseconds (0 up to Infinity, ` +
        `which means no limit), got ${describeValue(value)}`,
    );
  }
  return value;
}

/**
 * Calls `fn` once after `ms` milliseconds (never sooner), however long that
 * is: past `maxDelay` (the setTimeout limit; smaller only in tests) the wait
 * is a chain of timers, each re-armed for what is left. Returns `{ clear() }`.
 * The timers are ref'd, like a plain setTimeout.
 */
function setLongTimeout(fn, ms, maxDelay = MAX_TIMER_DELAY) {
  return new LongTimeout(fn, performance.now() + ms, maxDelay, ms);
}

class LongTimeout {
  constructor(fn, deadline, maxDelay, ms) {
    this._fn = fn;
    this._deadline = deadline;
    this._maxDelay = maxDelay;
    this._timer = null;
    this._arm(ms);
  }

  // Waits at most maxDelay at a time; fires only once the clock has reached
  // the deadline (a timer armed on a stale loop time can fire a little early).
  _arm(left) {
    this._timer = setTimeout(() => {
      const rest = this._deadline - performance.now();
      if (rest > 0) {
        this._arm(rest);
        return;
      }
      this._timer = null;
      this._fn();
    }, Math.min(Math.max(0, left), this._maxDelay));
  }

  /** Stops the wait; `fn` is not called. Again: no-op. */
  clear() {
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
  }
}

module.exports = {
  MAX_TIMER_DELAY,
  checkDuration,
  setLongTimeout,
};
