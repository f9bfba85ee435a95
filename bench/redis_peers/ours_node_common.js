'use strict';
// a3s-lane (Node)'s side of bench/bench_redis.py: the queue its worker and
// its producer process name, as ours_common.py for the Python systems. Five
// lanes, p0 (most urgent) to p4, no reservation (minConcurrency 0, as the
// peers have none), each allowed every slot (maxConcurrency 10); Redis mode,
// queue "bench". With `reserve`, p0 keeps one of the 10 slots for itself
// (minConcurrency 1), a rule the peers do not have. The SDK is the
// repository's own node/ package (npm install in node/ first).
const path = require('node:path');

// A3S_BENCH_NODE_SDK: another checkout's node/ package (to compare two versions).
const NODE_SDK = process.env.A3S_BENCH_NODE_SDK || path.join(__dirname, '..', '..', 'node');
const { Lane } = require(NODE_SDK);

const QUEUE = 'bench';
const LEVELS = 5;
const SLOTS_TOTAL = 10;

function lane(url, { maxWorkers, reserve = false } = {}) {
  const configs = [];
  for (let level = 0; level < LEVELS; level += 1) {
    configs.push({
      laneId: `p${level}`,
      priority: level,
      minConcurrency: reserve && level === 0 ? 1 : 0,
      maxConcurrency: SLOTS_TOTAL,
    });
  }
  const options = { redis: url, queue: QUEUE };
  if (maxWorkers !== undefined) options.maxWorkers = maxWorkers;
  return Lane.withLanes(configs, options);
}

// The `redis` package the SDK uses, for the job bodies' own bookkeeping.
function redisPackage() {
  return require(require.resolve('redis', { paths: [NODE_SDK] }));
}

module.exports = { lane, redisPackage, LEVELS, QUEUE };
