'use strict';
// Redis mode: close() while promises are pending (their commands not run by
// any worker) rejects them with ERR_LANE_SHUTTING_DOWN, and then nothing of
// Redis mode keeps the process alive: no connection (the results reader's
// BLMOVE, the events reader's XREAD, the worker's BLMPOP), no timer, no
// loop. Each case runs in a child node that must exit by itself (no
// process.exit) within EXIT_LIMIT_MS; if it does not, it is killed and the
// test fails with what the child reported still active. A redis-server of
// this file's own runs on a free port; every wait is bounded.

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { RedisServer, skipReason, uniqueQueue } = require('./redis-server');
const { within } = require('./helpers');

const skip = skipReason();
const PACKAGE = path.join(__dirname, '..');
// How long the child may take to exit once close() has settled its promises.
const EXIT_LIMIT_MS = 5000;
let server;

before(async () => {
  if (!skip) server = await new RedisServer().start();
});

after(async () => {
  if (server) await server.stop();
});

/**
 * Runs `code` in a child node (Lane, url, queue and `closed()` in scope) and
 * resolves with its stdout lines once it exits by itself. The code calls
 * closed() once close() has run: from then on the child must exit within
 * EXIT_LIMIT_MS, else it is killed (after printing, on an unref'd timer,
 * the resources still keeping it alive) and this rejects.
 */
function child(queue, code) {
  const script = `const { Lane } = require(${JSON.stringify(PACKAGE)});
const url = ${JSON.stringify(server.url)};
const queue = ${JSON.stringify(queue)};
function closed() {
  console.log('closed');
  setTimeout(() => {
    console.log('still alive: ' + JSON.stringify(process.getActiveResourcesInfo()));
  }, ${EXIT_LIMIT_MS - 1000}).unref();
}
(async () => {
${code}
})().catch((e) => { console.error(e); process.exitCode = 1; });
`;
  const proc = spawn(process.execPath, ['-e', script], { cwd: PACKAGE, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let killTimer = null;
  proc.stdout.setEncoding('utf8').on('data', (chunk) => {
    stdout += chunk;
    if (killTimer === null && /^closed$/m.test(stdout)) {
      killTimer = setTimeout(() => proc.kill('SIGKILL'), EXIT_LIMIT_MS);
    }
  });
  proc.stderr.setEncoding('utf8').on('data', (chunk) => {
    stderr += chunk;
  });
  // Before close(): bounded too (a stuck start or submit fails, not hangs).
  const startTimer = setTimeout(() => {
    if (killTimer === null) proc.kill('SIGKILL');
  }, 20_000);
  return within(new Promise((resolve, reject) => {
    proc.once('exit', (status, signal) => {
      clearTimeout(startTimer);
      clearTimeout(killTimer);
      if (signal !== null) {
        reject(new Error(`the child did not exit by itself (killed, ${signal})\n${stdout}${stderr}`));
      } else if (status !== 0) {
        reject(new Error(`the child failed (status ${status})\n${stdout}${stderr}`));
      } else {
        resolve(stdout.trim().split('\n'));
      }
    });
  }), 30_000, 'the child');
}

// Waits (bounded, on Redis' own count) until `n` commands are queued in the lane.
const QUEUED = `
async function queued(lane, n) {
  const deadline = Date.now() + 10000;
  while ((await lane.statsAsync()).totalPending < n) {
    if (Date.now() > deadline) throw new Error('the commands were not queued within 10 s');
    await new Promise((resolve) => setImmediate(resolve));
  }
}
// Waits (bounded) until a client of Redis is blocked in \`command\` (CLIENT LIST).
async function blockedIn(command) {
  const client = require('redis').createClient({ url });
  await client.connect();
  try {
    const deadline = Date.now() + 10000;
    while (!(await client.sendCommand(['CLIENT', 'LIST'])).split('\\n').some((line) => line.includes(' cmd=' + command + ' '))) {
      if (Date.now() > deadline) throw new Error('no client blocked in ' + command + ' within 10 s');
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    client.destroy();
  }
}
async function closeAndReport(lane, promises) {
  const outcomes = promises.map((p) => p.then(() => 'resolved', (e) => e.code));
  await lane.close();
  closed();
  console.log(JSON.stringify(await Promise.all(outcomes)));
}
`;

const JOBS = [{ laneId: 'jobs', priority: 0, minConcurrency: 0, maxConcurrency: 2 }];

function closeTest(name, code) {
  test(name, { skip, timeout: 40_000 }, async () => {
    const lines = await child(uniqueQueue(name), `const JOBS = ${JSON.stringify(JOBS)};\n${QUEUED}\n${code}`);
    assert.equal(lines[0], 'closed', lines.join('\n'));
    const outcomes = JSON.parse(lines[1]);
    assert.ok(outcomes.length > 0);
    for (const outcome of outcomes) assert.equal(outcome, 'ERR_LANE_SHUTTING_DOWN', lines.join('\n'));
  });
}

closeTest('a producer closed with a run() and a submitAsync() pending: they reject, the process exits', `
  const lane = Lane.withLanes(JOBS, { redis: url, queue });
  lane.start({ worker: false });
  const promises = [lane.run('jobs', 'nobody.runs.this', { n: 1 }), lane.submitAsync('jobs', 'nobody.runs.this', '{}')];
  await queued(lane, 2);
  await blockedIn('blmove'); // the results reader
  await closeAndReport(lane, promises);
`);

closeTest('a producer closed at once, before its submits reached Redis: they reject, the process exits', `
  const lane = Lane.withLanes(JOBS, { redis: url, queue });
  lane.start({ worker: false });
  const promises = [lane.run('jobs', 'nobody.runs.this', { n: 1 }), lane.submitAsync('jobs', 'nobody.runs.this', '{}')];
  await closeAndReport(lane, promises);
`);

closeTest('a producer closed with runMany() results and a subscription pending: they reject, the process exits', `
  const lane = Lane.withLanes(JOBS, { redis: url, queue });
  lane.start({ worker: false });
  lane.subscribe(() => {});
  const promises = await lane.runMany('jobs', [['nobody.runs.this', {}], ['nobody.runs.this', {}]]);
  await queued(lane, 2);
  await blockedIn('xread'); // the events reader
  await blockedIn('blmove');
  await closeAndReport(lane, promises);
`);

closeTest('a worker (lane paused) closed with run(), add() and a subscription pending: they reject, the process exits', `
  const lane = Lane.withLanes(JOBS, { redis: url, queue });
  lane.registerHandler('job', () => 'ran');
  lane.start();
  lane.subscribe(() => {});
  lane.pauseLane('jobs');
  const promises = [lane.run('jobs', 'job', {}), lane.add('jobs', () => 'ran')];
  await queued(lane, 2);
  await blockedIn('blmpop'); // the worker's wake reader
  await blockedIn('xread');
  await blockedIn('blmove');
  await closeAndReport(lane, promises);
`);

closeTest('a worker started with keepAlive, closed with a run() pending: it rejects, the process exits', `
  const lane = Lane.withLanes(JOBS, { redis: url, queue });
  lane.start({ keepAlive: true });
  lane.pauseLane('jobs');
  const promises = [lane.run('jobs', 'job', {})];
  await queued(lane, 1);
  await closeAndReport(lane, promises);
`);

closeTest('a producer closed with a run() and a drain() waiting: both reject, the process exits', `
  const lane = Lane.withLanes(JOBS, { redis: url, queue });
  lane.start({ worker: false });
  const promises = [lane.run('jobs', 'nobody.runs.this', {})];
  await queued(lane, 1);
  promises.push(lane.drain());
  await blockedIn('xread');
  await closeAndReport(lane, promises);
`);
