'use strict';
// A Node process on a Redis queue, for the cross-language tests
// (../tests/test_cross_language.py) and the cross-process ones
// (redis-faults.test.js, redis-sync.test.js):
//
//   node test/redis-agent.js URL QUEUE SLOTS LEASE_MS LANES_JSON [TYPES] [worker|producer]
//
// LANES_JSON: [[laneId, priority, min, max], ...]; TYPES: more command types,
// comma-separated, handled like "record". As a worker it registers the
// handlers of tests/redis_worker.py (the Python worker), measuring
// themselves in Redis under "test:<queue>:":
//   record  {tag, lane, hold?, sleep?}: INCR conc:<lane>, RPUSH its value to
//           peaks:<lane> and the tag to order, then holds (BLPOP gate,
//           bounded) or sleeps, DECR; returns {tag, pid}
//   whoami  returns the pid
// It prints {"ready": workerId|null} and then serves JSON lines on stdin:
//   {"req", "op": "run", "lane", "type", "payload"} -> {"req", "ok", "value"|"error", "commandId"}
//   {"req", "op": "submit", ...}                      the synchronous submit, same reply
//   {"req", "op": "stats"}                            -> the stats
//   {"req", "op": "subscribe"}                        -> then {"event": key, "payload"} lines
// and leaves the queue when stdin closes.

const readline = require('node:readline');
const path = require('node:path');
const { Lane } = require(path.join(__dirname, '..'));
const { createClient } = require('redis');

const HOLD_LIMIT_S = 30;
const [url, queue, slots, leaseMs, lanesJson, typesArg = '', mode = 'worker'] = process.argv.slice(2);
const prefix = `test:${queue}`;

function out(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main() {
  const store = createClient({ url, RESP: 2 });
  store.on('error', () => {});
  await store.connect();
  const lane = Lane.withLanes(
    JSON.parse(lanesJson).map(([laneId, priority, minConcurrency, maxConcurrency]) => ({
      laneId, priority, minConcurrency, maxConcurrency,
    })),
    { redis: url, queue, maxWorkers: Number(slots), leaseMs: Number(leaseMs) },
  );
  async function record(payload) {
    const where = payload.lane || '';
    const now = await store.sendCommand(['INCR', `${prefix}:conc:${where}`]);
    await store.sendCommand(['RPUSH', `${prefix}:peaks:${where}`, String(now)]);
    await store.sendCommand(['RPUSH', `${prefix}:order`, payload.tag]);
    try {
      if (payload.hold) {
        const blocking = store.duplicate();
        blocking.on('error', () => {});
        await blocking.connect();
        try {
          await blocking.sendCommand(['BLPOP', `${prefix}:gate`, String(HOLD_LIMIT_S)]);
        } finally {
          blocking.destroy();
        }
      } else if (payload.sleep) {
        await new Promise((resolve) => setTimeout(resolve, payload.sleep * 1000));
      }
    } finally {
      await store.sendCommand(['DECR', `${prefix}:conc:${where}`]);
    }
    return { tag: payload.tag, pid: process.pid, runtime: 'node' };
  }
  if (mode === 'worker') {
    lane.registerHandler('record', record);
    lane.registerHandler('whoami', () => process.pid);
    for (const type of typesArg.split(',').filter(Boolean)) lane.registerHandler(type, record);
  }
  lane.start({ worker: mode === 'worker' });
  out({ ready: lane.workerId, pid: process.pid });

  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let request;
    try {
      request = JSON.parse(line);
    } catch {
      return;
    }
    const reply = (fields) => out({ req: request.req, ...fields });
    const fail = (error) => reply({ ok: false, error: { code: error.code, message: error.message } });
    try {
      switch (request.op) {
        case 'run': {
          const promise = lane.run(request.lane, request.type, request.payload);
          promise.then((value) => reply({ ok: true, value, commandId: promise.commandId }), fail);
          break;
        }
        case 'submit':
          reply({ ok: true, value: JSON.parse(lane.submit(request.lane, request.type, JSON.stringify(request.payload))) });
          break;
        case 'stats':
          reply({ ok: true, value: lane.stats() });
          break;
        case 'subscribe':
          lane.subscribe((err, event) => out({ event: event.key, payload: JSON.parse(event.payload) }));
          reply({ ok: true, value: null });
          break;
        default:
          reply({ ok: false, error: { code: 'BAD_REQUEST', message: `unknown op ${request.op}` } });
      }
    } catch (error) {
      fail(error);
    }
  });
  lines.on('close', async () => {
    await lane.close();
    store.destroy();
  });
}

main().catch((error) => {
  process.stderr.write(`redis-agent failed: ${error.stack}\n`);
  process.exit(1);
});
