'use strict';
// Synchronous Redis calls for the main thread: one worker thread per
// process (bridge-thread.js) does the round trips while the main thread
// waits with Atomics.wait. Used where the API is synchronous (start(),
// stats(), cancel(), pauseLane(), resumeLane(), the seed's submit()) and the
// call cannot need this thread's event loop.

const path = require('node:path');
const { Worker, MessageChannel, receiveMessageOnPort } = require('node:worker_threads');
const { LaneError } = require('../errors');
const { CONNECT_TIMEOUT_MS, COMMAND_TIMEOUT_MS } = require('./connection');

// A request that is not a submit gets this long before it is given up.
const REQUEST_LIMIT_MS = CONNECT_TIMEOUT_MS + 2 * COMMAND_TIMEOUT_MS + 5000;

let bridge = null;

class Bridge {
  constructor() {
    this.flagBuffer = new SharedArrayBuffer(4);
    this.flag = new Int32Array(this.flagBuffer);
    const { port1, port2 } = new MessageChannel();
    // Replies come on port1, read synchronously (receiveMessageOnPort).
    this.port = port1;
    this.port.unref();
    this.seq = 0;
    this.worker = new Worker(path.join(__dirname, 'bridge-thread.js'), {
      workerData: { flag: this.flagBuffer, port: port2 },
      transferList: [port2],
    });
    // The bridge never keeps the process alive.
    this.worker.unref();
    this.broken = null;
    this.worker.on('error', (error) => {
      this.broken = error;
    });
    this.worker.on('exit', () => {
      if (bridge === this) bridge = null;
    });
  }

  /**
   * Sends `request` and blocks until its reply (at most `limitMs`; Infinity
   * for a submit, which waits for its command's result as the original did).
   */
  call(request, limitMs = REQUEST_LIMIT_MS) {
    if (this.broken) throw new LaneError('ERR_LANE_REDIS', `the Redis bridge thread failed: ${this.broken.message}`);
    const seq = ++this.seq;
    Atomics.store(this.flag, 0, 0);
    this.worker.postMessage({ ...request, seq });
    const deadline = Date.now() + limitMs;
    for (;;) {
      const left = limitMs === Infinity ? 1000 : deadline - Date.now();
      if (left <= 0) {
        if (request.op === 'submit') {
          throw new LaneError('ERR_LANE_TIMEOUT', `submit() waited ${limitMs} ms for command ${request.id} ` +
            '(A3S_LANE_SYNC_SUBMIT_LIMIT_MS); it may still run');
        }
        throw new LaneError('ERR_LANE_REDIS_UNREACHABLE',
          `Redis at ${request.redacted} did not answer ${request.op} within ${limitMs} ms`);
      }
      Atomics.wait(this.flag, 0, 0, Math.min(left, 1000));
      // eslint-disable-next-line no-constant-condition
      for (;;) {
        const received = receiveMessageOnPort(this.port);
        if (received === undefined) break;
        const message = received.message;
        if (message.seq === seq || message.seq === -1) {
          Atomics.store(this.flag, 0, 0);
          if (message.ok) return message.value;
          const error = new LaneError(message.error.code, message.error.message);
          if (message.error.laneId !== undefined) error.laneId = message.error.laneId;
          throw error;
        }
        // A reply to a request given up on earlier: dropped.
      }
      Atomics.store(this.flag, 0, 0);
    }
  }
}

/** The process's bridge, started on first use. */
function getBridge() {
  if (bridge === null) bridge = new Bridge();
  return bridge;
}

module.exports = { getBridge, REQUEST_LIMIT_MS };
