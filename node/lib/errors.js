'use strict';
// LaneError, the errors the queue raises, and the describers that put
// values, errors and durations into messages.

/** Every error the queue itself raises; `code` says which problem it is. */
class LaneError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'LaneError';
    this.code = code;
  }
}

function configError(message) {
  return new LaneError('ERR_LANE_INVALID_CONFIG', `Configuration error: ${message}`);
}

function laneNotFound(laneId, known) {
  const error = new LaneError(
    'ERR_LANE_NOT_FOUND',
    `Lane not found: ${laneId}${known.length ? ` (known lanes: ${known.join(', ')})` : ''}`,
  );
  error.laneId = laneId;
  return error;
}

function shuttingDown() {
  return new LaneError(
    'ERR_LANE_SHUTTING_DOWN',
    'Queue is shutting down, not accepting new commands',
  );
}

// A negative engine return code is an engine error; anything else is passed on.
function checkRc(rc, what) {
  if (rc < 0) throw new LaneError('ERR_LANE_ENGINE', `${what}: engine error ${rc}`);
  return rc;
}

function describeError(error) {
  try {
    if (error instanceof Error) {
      return error.message ? `${error.name}: ${error.message}` : error.name;
    }
    return String(error);
  } catch {
    return 'unprintable error';
  }
}

function describeMs(ms) {
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

module.exports = {
  LaneError,
  configError,
  laneNotFound,
  shuttingDown,
  checkRc,
  describeError,
  describeMs,
  typeName,
};
