'use strict';
// Replays every shared scheduling scenario (../tests/scenarios/*.scn) through
// the Redis lane rules, called from Node: the same a3s_lane functions the
// Python package loads (pylane/redis/lanes.lua), driven here through this
// package's own client code (lib/redis/connection.js), with the C engine's
// dispatch order expected. As in tests/test_redis_scenarios.py: time is
// injected (the scenario clock as `now` ms), `workers N` becomes fake
// workers whose slots add up to N (two when N >= 2, claiming in turn, one
// slot at a time), `workers 0` one worker with more slots than any scenario
// runs, and they handle no command type (any worker may run any type).

const { before, after, test } = require('node:test');
const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');
const { loadScenarios, parseScenario, ScenarioError } = require('./scenario');
const { RedisServer, skipReason } = require('./redis-server');
const { Functions, openClient, closeClient, ensureLibrary, laneConfigJson } = require('../lib/redis/connection');

const skip = skipReason();
const UNBOUNDED_SLOTS = 1_000_000;
const LEASE_MS = 10 ** 12; // the scenario clock never reaches it
let server;
let client;

before(async () => {
  if (skip) return;
  server = await new RedisServer().start();
  client = await openClient(server.url);
  await ensureLibrary(client, server.url);
});

after(async () => {
  closeClient(client);
  if (server) await server.stop();
});

/** Replays a parsed scenario on the Redis functions; throws ScenarioError at the first mismatch. */
async function replayOnRedis(scenario) {
  const fns = new Functions(client, server.url, `scn-${randomUUID().slice(0, 12)}`);
  const fail = (step, message) => {
    throw new ScenarioError(`${scenario.name}:${step.line} (Redis): ${message}`);
  };
  const slots = scenario.workers === 0 ? { w1: UNBOUNDED_SLOTS }
    : scenario.workers === 1 ? { w1: 1 }
      : { w1: Math.ceil(scenario.workers / 2), w2: Math.floor(scenario.workers / 2) };
  const held = Object.fromEntries(Object.keys(slots).map((w) => [w, []]));
  const leases = new Map(); // ticket -> [worker, lease]
  const tickets = new Map(); // ticket -> { lane, time, state }
  let now = 0;
  let joined = false;
  const join = async () => {
    if (joined) return;
    joined = true;
    for (const [name, n] of Object.entries(slots)) await fns.join(name, n, [], LEASE_MS, '', now);
  };
  for (const step of scenario.steps) {
    switch (step.command) {
      case 'lane': {
        let added;
        try {
          added = await fns.registerLanes([laneConfigJson({
            laneId: step.lane, priority: step.priority, minConcurrency: step.min, maxConcurrency: step.max,
          })], {}, now);
        } catch (error) {
          fail(step, `register_lanes(${step.priority}, ${step.min}, ${step.max}) raised ${error.message}`);
        }
        if (added !== 1) fail(step, `register_lanes added ${added} lanes, expected 1`);
        break;
      }
      case 'submit':
        for (const name of step.tickets) {
          now += 1;
          tickets.set(name, { lane: step.lane, time: now, state: 'pending' });
          const got = await fns.submit(name, step.lane, 'scenario', 'null', '', now);
          if (got !== name) fail(step, `submit(${name}) returned ${got}`);
        }
        break;
      case 'dispatch': {
        await join();
        const workers = Object.keys(slots);
        const got = [];
        let turn = 0;
        let idleInARow = 0;
        while (idleInARow < workers.length) {
          const worker = workers[turn++ % workers.length];
          if (held[worker].length >= slots[worker]) {
            idleInARow++;
            continue;
          }
          const reply = await fns.claim(worker, 1, [], now);
          if (!reply.known) fail(step, `worker ${worker} is not registered`);
          if (reply.claimed.length > 1) fail(step, `claim with 1 free slot returned ${reply.claimed.length}`);
          if (reply.claimed.length === 0) {
            idleInARow++;
            continue;
          }
          idleInARow = 0;
          const c = reply.claimed[0];
          const t = tickets.get(c.id);
          if (c.lane !== t.lane) fail(step, `${c.id} came from lane ${c.lane}, submitted to ${t.lane}`);
          if (Number(c.enq) !== t.time) fail(step, `${c.id} enqueued at ${c.enq}, submitted at ${t.time}`);
          t.state = 'running';
          held[worker].push(c.id);
          leases.set(c.id, [worker, c.lease]);
          got.push(c.id);
        }
        if (got.join(' ') !== step.tickets.join(' ')) {
          fail(step, `dispatched [${got.join(' ')}], expected [${step.tickets.join(' ')}]`);
        }
        break;
      }
      case 'complete':
      case 'fail':
        for (const name of step.tickets) {
          const t = tickets.get(name);
          if (t.state !== 'running') fail(step, `${name} is ${t.state}, not running (the scenario is wrong)`);
          const [worker, lease] = leases.get(name);
          leases.delete(name);
          const ack = { id: name, lease, status: step.command === 'complete' ? 'ok' : 'error', result: 'null', error: 'failed' };
          const reply = await fns.claim(worker, 0, [ack], now);
          if (reply.rejected.length || reply.claimed.length) {
            fail(step, `ack of ${name}: rejected ${reply.rejected}, claimed ${reply.claimed.length}`);
          }
          held[worker].splice(held[worker].indexOf(name), 1);
          t.state = 'done';
        }
        break;
      case 'cancel': {
        const got = await fns.cancel(step.ticket, now);
        if (Number(got) !== step.expect) fail(step, `cancel(${step.ticket}) returned ${Number(got)}, expected ${step.expect}`);
        if (got) tickets.get(step.ticket).state = 'cancelled';
        break;
      }
      case 'pause':
        await fns.pause(step.lane, now);
        break;
      case 'resume':
        await fns.resume(step.lane, now);
        break;
      case 'stats': {
        const s = (await fns.stats(now)).lanes.find((l) => l.lane_id === step.lane);
        for (const [key, value] of Object.entries(step.expect)) {
          const actual = Number(s[key]);
          if (actual !== value) fail(step, `stats ${step.lane} ${key}=${actual}, expected ${value}`);
        }
        break;
      }
      default:
        fail(step, `unhandled ${step.command}`);
    }
  }
}

const scenarios = loadScenarios();

for (const scenario of scenarios) {
  test(`scenario ${scenario.name} through the Redis lane rules`, { skip, timeout: 30_000 }, async () => {
    await replayOnRedis(scenario);
  });
}

test('the Redis replayer catches a wrong expectation, with file and line', { skip, timeout: 30_000 }, async () => {
  const good = 'lane a 0 0 1\nsubmit a t1 t2\ndispatch t1\n';
  const cases = [
    [`${good}dispatch t2\n`, 4, /dispatched \[\], expected \[t2\]/],
    [good.replace('dispatch t1', 'dispatch t2'), 3, /dispatched \[t1\], expected \[t2\]/],
    [`${good}complete t1\ndispatch\n`, 5, /dispatched \[t2\], expected \[\]/],
    [`${good}stats a pending=2\n`, 4, /stats a pending=1, expected 2/],
    [`${good}cancel t1 yes\n`, 4, /cancel\(t1\) returned 0, expected 1/],
  ];
  for (const [text, line, words] of cases) {
    await assert.rejects(replayOnRedis(parseScenario('broken', text)), (error) => {
      assert.ok(error instanceof ScenarioError);
      assert.match(error.message, new RegExp(`^broken:${line} \\(Redis\\): `));
      assert.match(error.message, words);
      return true;
    });
  }
});
