'use strict';
// A queued command (Job, also what its handler gets besides the payload),
// each lane's waiting jobs (JobRing), and the checks and copies of what
// submits pass in.

const { LaneError, typeName } = require('./errors');

const MODE_JSON = 0; // submit / submitAsync: JSON string in, JSON string out
const MODE_VALUE = 1; // run / add: values in and out
const MODE_FN = 2; // a waiting add(): its slot holds the function, not a payload
const MODE_GONE = -1; // a waiting slot whose job was withdrawn

// The command type of an add() without options.commandType: the function's name.
function functionType(fn) {
  const name = fn.name;
  return typeof name === 'string' && name !== '' ? name : 'function';
}

/**
 * A queued command, and the context its handler gets besides the payload:
 * `laneId`, `commandType`, `commandId`, `signal`. One object per command,
 * so starting a command allocates nothing more. The fields with an
 * underscore are the queue's.
 */
class Job {
  constructor(lane, ticket, type, payload, fn, mode, resolve, reject, signal) {
    this.lane = lane; // the queue's lane record: { id, index, queue, ... }
    this.ticket = ticket;
    this._type = type; // null: the function's name, read when needed (add())
    this.payload = payload;
    this.fn = fn;
    this.mode = mode;
    this._resolve = resolve;
    this._reject = reject;
    this.signal = signal;
    // Set when the job ends (settled or withdrawn): a job frees its engine
    // slot and settles its promise once, whatever its handler does.
    this._done = false;
  }

  get laneId() {
    return this.lane.id;
  }

  get commandType() {
    if (this._type === null) this._type = functionType(this.fn);
    return this._type;
  }

  get commandId() {
    return this.lane.queue._commandId(this.ticket);
  }

  toJSON() {
    return { laneId: this.laneId, commandType: this.commandType, commandId: this.commandId };
  }
}

/**
 * One lane's waiting jobs, in submit order (the engine's order inside a
 * lane), six array slots each — ticket, type, payload or function, mode,
 * resolve, reject — rather than an object each: a burst of waiting jobs is
 * mostly what the young-generation GC has to copy, so the less it holds the
 * better. The Job (the handler's context) is made when the engine hands the
 * ticket out: `take(ticket)` returns it from the front, dropping withdrawn
 * slots before it. Tickets grow, so `find` is a binary search. The array is
 * reused from burst to burst (compacted in place), not reallocated: growing
 * it anew each burst cost page faults and mmap/munmap churn.
 */
const STRIDE = 6;
// An empty ring keeps its array (no reallocation on the next burst) up to
// this many slots; a bigger one is let go.
const KEEP_SLOTS = 65_536 * STRIDE;

class JobRing {
  constructor(lane) {
    this.lane = lane;
    this.slots = [];
    this.head = 0; // the first live slot
    this.tail = 0; // past the last one; slots.length may be more
  }

  push(ticket, type, body, mode, resolve, reject) {
    const slots = this.slots;
    const tail = this.tail;
    if (tail === slots.length) {
      slots.push(ticket, type, body, mode, resolve, reject);
    } else {
      slots[tail] = ticket;
      slots[tail + 1] = type;
      slots[tail + 2] = body;
      slots[tail + 3] = mode;
      slots[tail + 4] = resolve;
      slots[tail + 5] = reject;
    }
    this.tail = tail + STRIDE;
  }

  take(ticket) {
    const slots = this.slots;
    const tail = this.tail;
    let head = this.head;
    let job;
    while (head < tail) {
      const at = head;
      head += STRIDE;
      if (slots[at] === ticket) {
        const body = slots[at + 2];
        const mode = slots[at + 3];
        job = mode === MODE_FN
          ? new Job(this.lane, ticket, slots[at + 1], null, body, MODE_VALUE, slots[at + 4], slots[at + 5], undefined)
          : new Job(this.lane, ticket, slots[at + 1], body, null, mode, slots[at + 4], slots[at + 5], undefined);
      }
      slots[at + 2] = slots[at + 4] = slots[at + 5] = undefined;
      if (job !== undefined) break;
    }
    if (head >= tail) {
      head = 0;
      this.tail = 0;
      if (slots.length > KEEP_SLOTS) this.slots = [];
    } else if (head > 1024 * STRIDE && head > tail >>> 1) {
      // Move the live slots to the front, in place (a loop: copyWithin is a
      // generic, slow builtin), and clear what they left.
      const live = tail - head;
      for (let i = 0; i < live; i++) slots[i] = slots[head + i];
      for (let i = live; i < tail; i++) slots[i] = undefined;
      this.tail = live;
      head = 0;
    }
    this.head = head;
    return job;
  }

  // The slot index of a waiting ticket, or -1.
  find(ticket) {
    const slots = this.slots;
    let lo = this.head / STRIDE;
    let hi = this.tail / STRIDE - 1;
    if (lo > hi || slots[lo * STRIDE] > ticket || slots[hi * STRIDE] < ticket) return -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const t = slots[mid * STRIDE];
      if (t === ticket) return slots[mid * STRIDE + 3] === MODE_GONE ? -1 : mid * STRIDE;
      if (t < ticket) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  // Withdraws the job at a slot `find` returned; returns its reject.
  remove(at) {
    const reject = this.slots[at + 5];
    this.slots[at + 3] = MODE_GONE;
    this.slots[at + 2] = this.slots[at + 4] = this.slots[at + 5] = undefined;
    return reject;
  }
}

function parsePayloadJson(payloadJson) {
  if (payloadJson === undefined || payloadJson === null) return null;
  if (typeof payloadJson !== 'string') {
    throw new LaneError(
      'ERR_LANE_INVALID_PAYLOAD',
      `Invalid payload: expected a JSON string (e.g. JSON.stringify(value)), got ${typeName(payloadJson)}`,
    );
  }
  try {
    return JSON.parse(payloadJson);
  } catch (error) {
    throw new LaneError('ERR_LANE_INVALID_PAYLOAD', `Invalid JSON payload: ${error.message}`);
  }
}

/** The payload as JSON text (null and undefined: 'null'); ERR_LANE_INVALID_PAYLOAD without one. */
function payloadJson(payload) {
  if (payload === undefined || payload === null) return 'null';
  let text;
  try {
    text = JSON.stringify(payload);
  } catch (error) {
    throw new LaneError('ERR_LANE_INVALID_PAYLOAD', `payload is not JSON-serialisable: ${error.message}`);
  }
  if (text === undefined) {
    throw new LaneError('ERR_LANE_INVALID_PAYLOAD', `payload is not JSON-serialisable: ${typeof payload}`);
  }
  return text;
}

function copyPayload(payload) {
  if (payload === undefined || payload === null) return null;
  const kind = typeof payload;
  if (kind === 'string' || kind === 'boolean' || (kind === 'number' && Number.isFinite(payload))) {
    return payload;
  }
  return JSON.parse(payloadJson(payload));
}

function checkCommandType(commandType) {
  if (typeof commandType !== 'string') {
    throw new TypeError(`commandType must be a string, got ${typeName(commandType)}`);
  }
}

function checkSubmitOptions(options) {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') {
    throw new TypeError(`options must be an object, got ${typeName(options)}`);
  }
  const { signal } = options;
  if (signal !== undefined && signal !== null &&
      (typeof signal !== 'object' || typeof signal.addEventListener !== 'function' ||
       typeof signal.aborted !== 'boolean')) {
    throw new TypeError('options.signal must be an AbortSignal');
  }
  return signal || undefined;
}

// Reads `value.then` once; a throwing getter throws here (the handler's
// failure, for the caller to catch).
function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof value.then === 'function';
}

const promiseThen = Promise.prototype.then;

/**
 * Calls `onValue` or `onError` once, later, with the outcome of a thenable a
 * handler returned. `Promise.resolve` adopts it with once-only resolving
 * functions, so a thenable that calls back twice, calls both callbacks or
 * throws after calling back counts only its first outcome; the built-in
 * `then` is used even if the promise has its own. May throw synchronously
 * (a promise whose `constructor` getter throws): the caller's try/catch
 * fails the job then.
 */
function whenSettled(thenable, onValue, onError) {
  promiseThen.call(Promise.resolve(thenable), onValue, onError);
}

module.exports = {
  MODE_JSON,
  MODE_VALUE,
  MODE_FN,
  Job,
  JobRing,
  functionType,
  parsePayloadJson,
  payloadJson,
  copyPayload,
  checkCommandType,
  checkSubmitOptions,
  isThenable,
  whenSettled,
};
