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

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') &&
    typeof value.then === 'function';
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
};
