'use strict';
// A queued command (Job), what its handler gets besides the payload
// (CommandContext), and the checks and copies of what submits pass in.

const { LaneError, typeName } = require('./errors');

const MODE_JSON = 0; // submit / submitAsync: JSON string in, JSON string out
const MODE_VALUE = 1; // run / add: values in and out

class Job {
  constructor(lane, ticket, type, payload, fn, mode, resolve, reject, signal) {
    this.lane = lane;
    this.ticket = ticket;
    this.type = type;
    this.payload = payload;
    this.fn = fn;
    this.mode = mode;
    this.resolve = resolve;
    this.reject = reject;
    this.signal = signal;
    this.onAbort = null;
    // Set when the job ends (settled or withdrawn): a job frees its engine
    // slot and settles its promise once, whatever its handler does.
    this.done = false;
  }
}

/** What a handler gets besides the payload. */
class CommandContext {
  constructor(queue, job) {
    this.laneId = job.lane.id;
    this.commandType = job.type;
    this.signal = job.signal || undefined;
    this._queue = queue;
    this._ticket = job.ticket;
  }

  get commandId() {
    return this._queue._commandId(this._ticket);
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

function copyPayload(payload) {
  if (payload === undefined || payload === null) return null;
  const kind = typeof payload;
  if (kind === 'string' || kind === 'boolean' || (kind === 'number' && Number.isFinite(payload))) {
    return payload;
  }
  let text;
  try {
    text = JSON.stringify(payload);
  } catch (error) {
    throw new LaneError('ERR_LANE_INVALID_PAYLOAD', `payload is not JSON-serialisable: ${error.message}`);
  }
  if (text === undefined) {
    throw new LaneError('ERR_LANE_INVALID_PAYLOAD', `payload is not JSON-serialisable: ${kind}`);
  }
  return JSON.parse(text);
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
  Job,
  CommandContext,
  parsePayloadJson,
  copyPayload,
  checkCommandType,
  checkSubmitOptions,
  isThenable,
  whenSettled,
};
