'use strict';
// Lane#runMany: many commands of one lane in one call. In Redis mode one
// a3s_submit_many call per SUBMIT_BATCH (500) commands, each batch queued
// whole or not at all (lib/redis/queue.js enqueueMany); in process one
// submit each, after every command was checked (all or none there too). The
// same API in both modes: a promise that resolves, once every command is
// queued, with one promise per command of its result (as run()'s).
//
// { results: false } (fire and forget, as the Python SDK's
// submit_many(results=False)): resolves with the command ids (strings)
// instead, and nothing is tracked. In Redis mode the commands are queued
// with reply-to '' (lanes.lua's deliver() skips it: no result is written
// anywhere, and this process starts no results reader); in process each
// command's outcome is dropped (no unhandled rejection). The ids are what
// lane.cancel() takes. The signal then guards the queueing only: aborted
// before the call, it rejects with ERR_LANE_CANCELLED and queues nothing;
// aborted while the batches go (Redis mode), the batches not yet sent are
// not queued and the rejection's `error.queued` holds the ids of those
// that were. Once the promise resolved the signal does nothing (there is
// no end to wait for to let go of it): cancel by id.

const { LaneError, laneNotFound, shuttingDown, typeName } = require('../errors');
const { MODE_VALUE, copyPayload, payloadJson, checkCommandType, checkSubmitOptions } = require('../jobs');

/** [commandType, payload] from a pair or a { commandType, payload } object. */
function commandOf(item, index) {
  if (Array.isArray(item)) {
    if (item.length < 1 || item.length > 2) {
      throw new TypeError(`runMany: command ${index} must be [commandType, payload], got an array of ${item.length}`);
    }
    return item;
  }
  if (item !== null && typeof item === 'object' && 'commandType' in item) return [item.commandType, item.payload];
  throw new TypeError(`runMany: command ${index} must be [commandType, payload] or { commandType, payload }, ` +
    `got ${typeName(item)}`);
}

function noop() {}

/** options.results: true (the default: a promise per command) or false (the ids only). */
function wantsResults(options) {
  if (options === undefined || options === null) return true;
  const { results } = options;
  if (results === undefined) return true;
  if (typeof results !== 'boolean') {
    throw new TypeError(`options.results must be a boolean, got ${typeName(results)}`);
  }
  return results;
}

async function runMany(lane, laneId, commands, options) {
  if (typeof laneId !== 'string') throw new TypeError(`laneId must be a string, got ${typeName(laneId)}`);
  const signal = checkSubmitOptions(options);
  const results = wantsResults(options);
  if (!Array.isArray(commands)) {
    throw new TypeError(`runMany(laneId, commands): commands must be an array, got ${typeName(commands)}`);
  }
  const redis = lane._redis;
  const items = new Array(commands.length);
  for (let i = 0; i < commands.length; i++) {
    const [type, payload] = commandOf(commands[i], i);
    checkCommandType(type);
    try {
      items[i] = [type, redis !== null ? payloadJson(payload) : copyPayload(payload)];
    } catch (error) {
      if (error instanceof LaneError) error.message = `command ${i}: ${error.message}`;
      throw error;
    }
  }
  if (redis !== null) {
    return results ? redis.enqueueMany(laneId, items, signal) : redis.enqueueManyIds(laneId, items, signal);
  }
  if (lane.isShuttingDown) throw shuttingDown();
  const ids = lane.laneIds;
  if (!ids.includes(laneId)) throw laneNotFound(laneId, ids);
  if (signal !== undefined && signal.aborted) {
    throw new LaneError('ERR_LANE_CANCELLED', 'Commands were cancelled before they started', { cause: signal.reason });
  }
  if (results) return items.map(([type, payload]) => lane._enqueue(laneId, type, payload, null, MODE_VALUE, signal));
  const out = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const promise = lane._enqueue(laneId, items[i][0], items[i][1], null, MODE_VALUE, undefined);
    promise.catch(noop); // its outcome is nobody's: dropped
    out[i] = promise.commandId;
  }
  return out;
}

module.exports = { runMany };
