#!/usr/bin/env node
// a3s-lane's Node package against its peers and a floor, same work, one run.
//
//   node --expose-gc bench/bench_node.js            # full run, two to three minutes
//   node --expose-gc bench/bench_node.js --quick    # smoke test, about 20 s
//   node --expose-gc bench/bench_node.js --json out.json
//   (cd node && npm run bench)                      # the same as the first line
//
// Needs `npm install` in node/ first: it builds the addon and installs the
// peers, devDependencies only (fastq, p-limit, p-queue; p-limit and p-queue
// are ESM-only and loaded with import()). The floors are bench/node_floor.js.
//
// Throughput: N jobs submitted at once, then awaited (Promise.all), every
// side with a concurrency limit of 10, for three kinds of work:
//   no-op      — `async () => {}`;
//   1 KB JSON  — JSON.parse then JSON.stringify of a 1 KB document;
//   1 ms timer — a promise resolved by setTimeout(…, 1).
// Without priorities: a3s-lane with one lane (max 10, maxWorkers 10) and
// add(), fastq (promise API), p-limit, p-queue, and the floor: a hand-written
// JS ring buffer plus a counter. With 6 priorities: a3s-lane with six lanes of
// priorities 0..5 (each max 10, maxWorkers 10) and job i in lane i % 6;
// p-queue with priority 5 - i % 6 (its higher number is more urgent: the same
// order); the floor: a hand-written FIFO ring per priority plus a counter
// (cheaper here than a binary heap, also in node_floor.js); and p-queue's own
// no-priority rate beside them.
// Each figure is the median of several rounds (min–max beside it) that
// alternate the sides (the order flips every round), after one untimed round
// of every side; every round builds a fresh queue, warms it up outside the
// timed region and starts after a full GC. Ratios are of medians from this
// one run (above 1 a3s-lane is faster), with the range of the ratios within
// a round beside them.
//
// Urgent job: 1,010 slow jobs (20 ms timers) are queued, then the queue is
// started: 10 run and 1,000 wait. One urgent job is submitted some time into
// the slow jobs' run (the same moments on every side, spread over the 20 ms);
// the time from its submit to its start. a3s-lane twice: an urgent lane with
// minConcurrency 1 (a reserved worker: 9 of the 10 run slow jobs) and with
// minConcurrency 0 (like p-queue: all 10 run slow jobs).

'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createRequire } = require('node:module');
const { pathToFileURL } = require('node:url');

const { RingLimiter, BucketLimiter } = require('./node_floor');

const NODE_DIR = path.join(__dirname, '..', 'node');
const requireFromNode = createRequire(path.join(NODE_DIR, 'package.json'));
const { Lane } = requireFromNode(NODE_DIR);

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const jsonIndex = args.indexOf('--json');
const JSON_OUT = jsonIndex >= 0 ? args[jsonIndex + 1] : null;

const ROUNDS = QUICK ? 3 : 7;
const URGENT_SAMPLES = QUICK ? 5 : 25;
const CONCURRENCY = 10;
const PRIORITIES = 6;
const SLOW_MS = 20;
const WAITING = 1_000;

const gc = typeof global.gc === 'function' ? global.gc : () => {};

// A 1 KB JSON document: a user and a few orders.
const DOC = JSON.stringify({
  id: 'c0ffee00-1234-4bcd-8ef0-123456789abc',
  user: { name: 'Ada Lovelace', email: 'ada@example.com', tags: ['admin', 'beta', 'eu'], age: 36 },
  orders: Array.from({ length: 6 }, (_, i) => ({
    id: 1000 + i, sku: `SKU-${i}-XYZ`, qty: i + 1, price: 9.99 * (i + 1), paid: i % 2 === 0,
    note: 'deliver to the back door, ring twice',
  })),
  meta: { created: '2026-11-24T09:51:05.522Z', source: 'bench', version: 3 },
});

// Each sample times `bursts` bursts of `jobs` jobs in a row on one queue
// (each burst submitted at once and awaited): short bursts are repeated so a
// sample is long enough not to be one preemption on a shared machine.
const WORK = [
  {
    name: 'no-op',
    fn: async () => {},
    sizes: QUICK ? [{ jobs: 10_000, bursts: 5 }] : [{ jobs: 10_000, bursts: 10 }, { jobs: 100_000, bursts: 1 }],
  },
  {
    name: '1 KB JSON',
    fn: async () => JSON.stringify(JSON.parse(DOC)),
    sizes: QUICK ? [{ jobs: 5_000, bursts: 2 }] : [{ jobs: 10_000, bursts: 3 }],
  },
  {
    name: '1 ms timer',
    fn: () => new Promise((resolve) => setTimeout(resolve, 1)),
    sizes: QUICK ? [{ jobs: 500, bursts: 1 }] : [{ jobs: 2_000, bursts: 1 }],
  },
];

async function loadPeers() {
  const version = (name) => {
    const file = path.join(NODE_DIR, 'node_modules', name, 'package.json');
    return JSON.parse(fs.readFileSync(file, 'utf8')).version;
  };
  const esm = async (name) => (await import(pathToFileURL(requireFromNode.resolve(name)).href)).default;
  return {
    fastq: requireFromNode('fastq'),
    pLimit: await esm('p-limit'),
    PQueue: await esm('p-queue'),
    versions: { fastq: version('fastq'), 'p-limit': version('p-limit'), 'p-queue': version('p-queue') },
  };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// ---- throughput ---------------------------------------------------------------

const laneIds = Array.from({ length: PRIORITIES }, (_, i) => `p${i}`);

function laneQueue(lanes) {
  const lane = Lane.withLanes(
    laneIds.slice(0, lanes).map((laneId, i) => ({
      laneId, priority: i, minConcurrency: 0, maxConcurrency: CONCURRENCY,
    })),
    { maxWorkers: CONCURRENCY },
  );
  lane.start();
  return lane;
}

// Each side makes a fresh queue and returns submit(i, work) -> promise.
const flatSides = {
  'a3s-lane': () => {
    const lane = laneQueue(1);
    return (i, work) => lane.add('p0', work);
  },
  fastq: (peers) => {
    const queue = peers.fastq.promise((work) => work(), CONCURRENCY);
    return (i, work) => queue.push(work);
  },
  'p-limit': (peers) => {
    const limit = peers.pLimit(CONCURRENCY);
    return (i, work) => limit(work);
  },
  'p-queue': (peers) => {
    const queue = new peers.PQueue({ concurrency: CONCURRENCY });
    return (i, work) => queue.add(work);
  },
  'floor (JS ring)': () => {
    const ring = new RingLimiter(CONCURRENCY);
    return (i, work) => ring.add(work);
  },
};

const prioSides = {
  'a3s-lane': () => {
    const lane = laneQueue(PRIORITIES);
    return (i, work) => lane.add(laneIds[i % PRIORITIES], work);
  },
  'p-queue': (peers) => {
    const queue = new peers.PQueue({ concurrency: CONCURRENCY });
    return (i, work) => queue.add(work, { priority: PRIORITIES - 1 - (i % PRIORITIES) });
  },
  'p-queue, no priorities': flatSides['p-queue'],
  'floor (JS rings)': () => {
    const rings = new BucketLimiter(CONCURRENCY, PRIORITIES);
    return (i, work) => rings.add(work, i % PRIORITIES);
  },
};

async function burst(submit, work, count) {
  const promises = new Array(count);
  for (let i = 0; i < count; i++) promises[i] = submit(i, work);
  await Promise.all(promises);
}

async function timeSide(make, peers, work, n, bursts) {
  const submit = make(peers);
  await burst(submit, work, Math.min(1_000, n >> 1));
  gc();
  const start = performance.now();
  for (let b = 0; b < bursts; b++) await burst(submit, work, n);
  return performance.now() - start;
}

async function measureThroughput(sides, peers) {
  const names = Object.keys(sides);
  const rows = [];
  for (const work of WORK) {
    for (const { jobs: n, bursts } of work.sizes) {
      const samples = Object.fromEntries(names.map((name) => [name, []]));
      // One untimed round first: every side's code is compiled and warm
      // before its first sample (a library with more code warms up slower).
      for (const name of names) await timeSide(sides[name], peers, work.fn, n, 1);
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 ? [...names].reverse() : names;
        for (const name of order) {
          const ms = await timeSide(sides[name], peers, work.fn, n, bursts);
          samples[name].push((n * bursts) / (ms / 1000));
        }
      }
      const row = { work: work.name, jobs: n, bursts, rates: {} };
      for (const name of names) {
        const s = samples[name];
        row.rates[name] = { median: median(s), min: Math.min(...s), max: Math.max(...s), samples: s };
      }
      rows.push(row);
    }
  }
  return rows;
}

// ---- urgent-job latency ---------------------------------------------------------

// The slow jobs of a round; the first start is the clock the urgent job's
// arrival is measured from, so both sides get it at the same moment of the
// slow jobs' run.
let firstSlowStart = 0;
const slowJob = () => {
  if (!firstSlowStart) firstSlowStart = performance.now();
  return new Promise((resolve) => setTimeout(resolve, SLOW_MS));
};
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const tick = () => new Promise((resolve) => setImmediate(resolve));
const untilPhase = async (phase) => {
  await tick();
  const wait = firstSlowStart + phase - performance.now();
  if (wait > 0) await pause(wait);
};

async function urgentLane(minConcurrency, phase) {
  const lane = Lane.withLanes([
    { laneId: 'urgent', priority: 0, minConcurrency, maxConcurrency: 1 },
    { laneId: 'slow', priority: 5, minConcurrency: 0, maxConcurrency: CONCURRENCY },
  ], { maxWorkers: CONCURRENCY });
  const pending = [];
  for (let i = 0; i < CONCURRENCY + WAITING; i++) {
    const promise = lane.add('slow', slowJob);
    promise.catch(() => {}); // cancelled below
    pending.push(promise.commandId);
  }
  lane.start();
  await untilPhase(phase);
  const submitted = performance.now();
  let started = 0;
  await lane.add('urgent', () => {
    started = performance.now();
  });
  const latency = started - submitted;
  for (const id of pending) lane.cancel(id);
  await lane.drain(10_000);
  return latency;
}

const urgentSides = {
  'a3s-lane, urgent lane min 1': (PQueue, phase) => urgentLane(1, phase),
  'a3s-lane, urgent lane min 0': (PQueue, phase) => urgentLane(0, phase),
  'p-queue, priority': async (PQueue, phase) => {
    const queue = new PQueue({ concurrency: CONCURRENCY, autoStart: false });
    for (let i = 0; i < CONCURRENCY + WAITING; i++) queue.add(slowJob, { priority: 0 });
    queue.start();
    await untilPhase(phase);
    const submitted = performance.now();
    let started = 0;
    await queue.add(() => {
      started = performance.now();
    }, { priority: 10 });
    const latency = started - submitted;
    queue.clear();
    await queue.onIdle();
    return latency;
  },
};

async function measureUrgent(PQueue) {
  const names = Object.keys(urgentSides);
  const samples = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < URGENT_SAMPLES; round++) {
    // The urgent job arrives at the same moment of the slow jobs' run on
    // every side: phases spread evenly over one slow job's duration.
    const phase = ((round + 0.5) / URGENT_SAMPLES) * SLOW_MS;
    const order = round % 2 ? [...names].reverse() : names;
    for (const name of order) {
      firstSlowStart = 0;
      samples[name].push(await urgentSides[name](PQueue, phase));
    }
  }
  const result = {};
  for (const name of names) {
    result[name] = { median: median(samples[name]), p95: percentile(samples[name], 95), max: Math.max(...samples[name]) };
  }
  return result;
}

// ---- report ------------------------------------------------------------------------

const fmtRate = (value) => (value >= 10_000 ? `${Math.round(value / 1000)}k` : `${(value / 1000).toFixed(1)}k`);
const fmtMs = (value) => (value < 0.1 ? value.toFixed(3) : value < 10 ? value.toFixed(2) : value.toFixed(1));
const fmtRatio = (value) => `${value.toFixed(2)}×`;
const rate = (r) => `${fmtRate(r.median)} (${fmtRate(r.min)}–${fmtRate(r.max)})`;

// A markdown table; the first `left` columns are text, the rest numbers.
function table(header, rows, left = 1) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i < left ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  const rule = widths.map((w, i) => (i < left ? `${'-'.repeat(w + 2)}` : `${'-'.repeat(w + 1)}:`));
  return [line(header), `|${rule.join('|')}|`, ...rows.map(line)].join('\n');
}

function throughputTable(rows, ratios) {
  const names = Object.keys(rows[0].rates);
  return table(
    ['work', 'jobs', ...names, ...ratios.map(([label]) => label)],
    rows.map((row) => [
      row.work,
      row.jobs.toLocaleString('en-US'),
      ...names.map((name) => rate(row.rates[name])),
      ...ratios.map(([, a, b]) => {
        // The ratio of the medians, and the range of the ratios within a
        // round (the two sides ran next to each other).
        const paired = row.rates[a].samples.map((x, i) => x / row.rates[b].samples[i]);
        return `${fmtRatio(row.rates[a].median / row.rates[b].median)} ` +
          `(${Math.min(...paired).toFixed(1)}–${Math.max(...paired).toFixed(1)})`;
      }),
    ]),
    2,
  );
}

async function main() {
  const peers = await loadPeers();
  const cpus = os.cpus().length;
  const v = peers.versions;
  console.log(`a3s-lane (Node addon) vs fastq ${v.fastq}, p-limit ${v['p-limit']}, p-queue ${v['p-queue']} ` +
    `and a hand-written floor, one run — Node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus} CPUs` +
    `${QUICK ? ' (--quick)' : ''}${typeof global.gc === 'function' ? '' : ' (no --expose-gc: no GC between rounds)'}`);
  console.log();

  const flat = await measureThroughput(flatSides, peers);
  console.log(`Without priorities: jobs/s, concurrency ${CONCURRENCY}, median of ${ROUNDS} alternating rounds (min–max)`);
  console.log();
  console.log(throughputTable(flat, [
    ['/ fastq', 'a3s-lane', 'fastq'], ['/ p-limit', 'a3s-lane', 'p-limit'], ['/ floor', 'a3s-lane', 'floor (JS ring)'],
  ]));
  console.log();

  const prio = await measureThroughput(prioSides, peers);
  console.log(`With ${PRIORITIES} priorities: jobs/s, concurrency ${CONCURRENCY}, median of ${ROUNDS} alternating rounds (min–max)`);
  console.log();
  console.log(throughputTable(prio, [
    ['/ p-queue', 'a3s-lane', 'p-queue'], ['/ floor', 'a3s-lane', 'floor (JS rings)'],
  ]));
  console.log();
  console.log('Where the paths differ, per job. a3s-lane: a commandId string on its promise, six slots in ' +
    'its lane\'s JS ring, a Job (the handler\'s context) at start, and two engine calls in C (its submit; ' +
    'the completion that hands its slot on), each a mutex round trip, reached through one N-API call per ' +
    'batch; the engine decides priority, limits and reservations. fastq: a recycled task object in a ' +
    'linked list. p-limit: a closure in a linked list (yocto-queue). p-queue: an object in an array; ' +
    'with priorities, kept sorted by binary search and splice (O(queue length) per submit). Floors: ' +
    'three slots in a JS array ring (one ring per priority) and a counter, nothing else.');
  console.log();

  const urgent = await measureUrgent(peers.PQueue);
  console.log(`Urgent job: submit → start while ${CONCURRENCY} slow (${SLOW_MS} ms) jobs run and ` +
    `${WAITING.toLocaleString('en-US')} wait, concurrency ${CONCURRENCY}, ms over ${URGENT_SAMPLES} samples`);
  console.log();
  const base = urgent['p-queue, priority'].median;
  console.log(table(
    ['queue', 'median', 'p95', 'max', 'p-queue / this (median)'],
    Object.entries(urgent).map(([name, r]) => [
      name, fmtMs(r.median), fmtMs(r.p95), fmtMs(r.max), fmtRatio(base / r.median),
    ]),
  ));

  if (JSON_OUT) {
    fs.mkdirSync(path.dirname(path.resolve(JSON_OUT)), { recursive: true });
    fs.writeFileSync(JSON_OUT, `${JSON.stringify({
      node: process.version, versions: v, cpus, quick: QUICK, rounds: ROUNDS, flat, prio, urgent,
    }, null, 2)}\n`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
