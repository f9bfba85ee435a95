#!/usr/bin/env node
// a3s-lane's Node package against p-queue, same work, one run.
//
//   node bench/bench_node.js            # full run, about a minute
//   node bench/bench_node.js --quick    # smoke test, a few seconds
//   node bench/bench_node.js --json out.json
//   (cd node && npm run bench)          # the same as the first line
//
// Needs `npm install` in node/ first (it builds the addon and installs
// p-queue, a devDependency).
//
// Workloads, both sides with a concurrency limit of 10:
//   throughput — N async no-op jobs spread over 6 priorities (a3s-lane: six
//     lanes of priorities 0..5, each max 10, maxWorkers 10; p-queue: priority
//     5 - i % 6), all submitted at once, then awaited (Promise.all). Also
//     p-queue with no priorities, for reference. N = 10,000 and 100,000.
//   urgent — 1,010 slow jobs (20 ms timers) are queued, then the queue is
//     started: 10 run and 1,000 wait. One urgent job is submitted some time
//     into the slow jobs' run (the same moments on every side, spread over
//     the 20 ms); the time from its submit to its start. a3s-lane twice: an urgent lane with minConcurrency 1 (a reserved
//     worker: 9 of the 10 workers run slow jobs) and with minConcurrency 0
//     (like p-queue: all 10 run slow jobs, the urgent job takes the next free one).
//
// Each throughput figure is the median of several rounds that alternate the
// sides (the order flips every round), with the spread (min-max) beside it;
// every round builds a fresh queue and warms it up outside the timed region.
// Ratios: a3s-lane / p-queue for throughput and p-queue / a3s-lane for latency,
// so above 1 a3s-lane is better.

'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createRequire } = require('node:module');
const { pathToFileURL } = require('node:url');

const NODE_DIR = path.join(__dirname, '..', 'node');
const requireFromNode = createRequire(path.join(NODE_DIR, 'package.json'));
const { Lane } = requireFromNode(NODE_DIR);

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const jsonIndex = args.indexOf('--json');
const JSON_OUT = jsonIndex >= 0 ? args[jsonIndex + 1] : null;

const SIZES = QUICK ? [10_000] : [10_000, 100_000];
const ROUNDS = QUICK ? 2 : 5;
const URGENT_SAMPLES = QUICK ? 5 : 25;
const CONCURRENCY = 10;
const PRIORITIES = 6;
const SLOW_MS = 20;
const WAITING = 1_000;

const noop = async () => {};
const gc = typeof global.gc === 'function' ? global.gc : () => {};

async function loadPQueue() {
  const file = requireFromNode.resolve('p-queue');
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(file), '..', 'package.json'), 'utf8'));
  const { default: PQueue } = await import(pathToFileURL(file).href);
  return { PQueue, version: pkg.version };
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

function laneQueue(extra) {
  const lanes = Array.from({ length: PRIORITIES }, (_, i) => ({
    laneId: `p${i}`, priority: i, minConcurrency: 0, maxConcurrency: CONCURRENCY,
  }));
  const lane = Lane.withLanes(lanes, { maxWorkers: CONCURRENCY, ...extra });
  lane.registerHandler('noop', noop);
  lane.start();
  return { lane, ids: lanes.map((l) => l.laneId) };
}

const throughputSides = {
  'a3s-lane add()': async (n) => {
    const { lane, ids } = laneQueue();
    const burst = async (count) => {
      const promises = new Array(count);
      for (let i = 0; i < count; i++) promises[i] = lane.add(ids[i % PRIORITIES], noop);
      await Promise.all(promises);
    };
    await burst(1_000);
    const start = performance.now();
    await burst(n);
    return performance.now() - start;
  },
  'a3s-lane run()': async (n) => {
    const { lane, ids } = laneQueue();
    const burst = async (count) => {
      const promises = new Array(count);
      for (let i = 0; i < count; i++) promises[i] = lane.run(ids[i % PRIORITIES], 'noop');
      await Promise.all(promises);
    };
    await burst(1_000);
    const start = performance.now();
    await burst(n);
    return performance.now() - start;
  },
  'p-queue, 6 priorities': async (n, PQueue) => {
    const queue = new PQueue({ concurrency: CONCURRENCY });
    const burst = async (count) => {
      const promises = new Array(count);
      for (let i = 0; i < count; i++) {
        promises[i] = queue.add(noop, { priority: PRIORITIES - 1 - (i % PRIORITIES) });
      }
      await Promise.all(promises);
    };
    await burst(1_000);
    const start = performance.now();
    await burst(n);
    return performance.now() - start;
  },
  'p-queue, no priorities': async (n, PQueue) => {
    const queue = new PQueue({ concurrency: CONCURRENCY });
    const burst = async (count) => {
      const promises = new Array(count);
      for (let i = 0; i < count; i++) promises[i] = queue.add(noop);
      await Promise.all(promises);
    };
    await burst(1_000);
    const start = performance.now();
    await burst(n);
    return performance.now() - start;
  },
};

async function measureThroughput(PQueue) {
  const results = [];
  const names = Object.keys(throughputSides);
  for (const n of SIZES) {
    const samples = Object.fromEntries(names.map((name) => [name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...names].reverse() : names;
      for (const name of order) {
        gc();
        const ms = await throughputSides[name](n, PQueue);
        samples[name].push(n / (ms / 1000));
      }
    }
    const row = { jobs: n };
    for (const name of names) {
      row[name] = { median: median(samples[name]), min: Math.min(...samples[name]), max: Math.max(...samples[name]) };
    }
    results.push(row);
  }
  return results;
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

const fmtRate = (value) => Math.round(value).toLocaleString('en-US');
const fmtMs = (value) => (value < 0.1 ? value.toFixed(3) : value < 10 ? value.toFixed(2) : value.toFixed(1));
const fmtRatio = (value) => `${value.toFixed(1)}×`;

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

async function main() {
  const { PQueue, version } = await loadPQueue();
  const cpus = os.cpus().length;
  console.log(`a3s-lane (Node addon) vs p-queue ${version}, same run — Node ${process.version}, ` +
    `${os.platform()} ${os.arch()}, ${cpus} CPUs${QUICK ? ' (--quick)' : ''}`);
  console.log();

  const throughput = await measureThroughput(PQueue);
  console.log(`Throughput: async no-op jobs over ${PRIORITIES} priorities, concurrency ${CONCURRENCY}, ` +
    `jobs/s, median of ${ROUNDS} rounds (min–max)`);
  console.log();
  const names = Object.keys(throughputSides);
  const rate = (r) => `${fmtRate(r.median)} (${fmtRate(r.min)}–${fmtRate(r.max)})`;
  console.log(table(
    ['jobs', ...names, 'add() / p-queue prio', 'add() / p-queue flat'],
    throughput.map((row) => [
      row.jobs.toLocaleString('en-US'),
      ...names.map((name) => rate(row[name])),
      fmtRatio(row['a3s-lane add()'].median / row['p-queue, 6 priorities'].median),
      fmtRatio(row['a3s-lane add()'].median / row['p-queue, no priorities'].median),
    ]),
  ));
  console.log();

  const urgent = await measureUrgent(PQueue);
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
      node: process.version, pqueue: version, cpus, quick: QUICK, throughput, urgent,
    }, null, 2)}\n`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
