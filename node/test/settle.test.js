'use strict';
// Every dispatched command ends exactly once — its engine slot is freed once,
// its promise settles with the first outcome — whatever its handler returns:
// thenables that call back twice, call both callbacks, throw after calling
// back, have a throwing `then` getter, or never call back at all.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { Lane, LaneError } = require('@a3s-lab/lane');
const { within, turn } = require('./helpers');

const PACKAGE_DIR = path.join(__dirname, '..');

// Misbehaving results for a job whose value is `n`. `call(fn)` runs the
// callbacks either synchronously inside `then` or from a later turn;
// `leave()` marks the job as no longer running (idempotent) just before.
// The third entry says how the caller's promise settles: the first outcome.
function misbehaving(call) {
  const boom = (n) => new Error(`first failure ${n}`);
  return [
    ['resolve twice', (n, leave) => ({ then(res) { call(() => { leave(); res(n); res(-1); }); } }), 'value'],
    ['resolve, then reject', (n, leave) => ({
      then(res, rej) { call(() => { leave(); res(n); rej(new Error('late')); }); },
    }), 'value'],
    ['reject, then resolve', (n, leave) => ({
      then(res, rej) { call(() => { leave(); rej(boom(n)); res(-1); }); },
    }), 'error'],
    ['reject twice', (n, leave) => ({
      then(res, rej) { call(() => { leave(); rej(boom(n)); rej(new Error('late')); }); },
    }), 'error'],
    ['resolve, then throw from then', (n, leave) => ({
      then(res) {
        call(() => { leave(); res(n); });
        if (call !== sync) leave();
        throw new Error('thrown after resolving');
      },
    }), call === sync ? 'value' : 'thrown'],
    ['resolve with a thenable that resolves twice, then again', (n, leave) => ({
      then(res) { call(() => { leave(); res({ then(inner) { inner(n); inner(-1); } }); res(-1); }); },
    }), 'value'],
    ['a native promise whose own then calls back twice', (n, leave) => {
      const p = new Promise((resolve) => call(() => { leave(); resolve(n); }));
      p.then = function then(res) { call(() => { leave(); res(n); res(-1); }); };
      return p;
    }, 'value'],
  ];
}
function sync(fn) {
  fn();
}
function later(fn) {
  setImmediate(fn);
}

for (const [mode, call] of [['synchronously', sync], ['later', later]]) {
  for (const [name, make, expect] of misbehaving(call)) {
    test(`a thenable that calls back wrongly (${name}, ${mode}): max 2 at once, each job ends once, first outcome wins`, async () => {
      const lane = Lane.withLanes([{ laneId: 'w', minConcurrency: 0, maxConcurrency: 2 }]);
      let running = 0;
      let most = 0;
      lane.registerHandler('odd', (n) => {
        running++;
        most = Math.max(most, running);
        let left = false;
        return make(n, () => {
          if (!left) {
            left = true;
            running--;
          }
        });
      });
      lane.start();
      const jobs = Array.from({ length: 8 }, (_, i) => lane.run('w', 'odd', i));
      const outcomes = (await within(Promise.allSettled(jobs), 10_000, name))
        .map((o) => (o.status === 'fulfilled' ? o.value : o.reason.message));
      assert.ok(most <= 2, `max-2 lane ran ${most} at once`);
      for (let i = 0; i < 8; i++) {
        if (expect === 'value') assert.equal(outcomes[i], i, `job ${i}`);
        else if (expect === 'error') assert.equal(outcomes[i], `first failure ${i}`, `job ${i}`);
        else assert.equal(outcomes[i], 'thrown after resolving', `job ${i}`);
      }
      await turn(2);
      const s = lane.stats().lanes[0];
      assert.equal(s.active, 0);
      assert.equal(s.pending, 0);
      assert.equal(s.dispatched, 8);
      assert.equal(s.completed + s.failed, 8, `completed ${s.completed} + failed ${s.failed}`);
      await within(lane.drain(1000));
    });
  }
}

test('a thenable that resolves twice: concurrency measured in a max-2 lane stays at 2', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', minConcurrency: 0, maxConcurrency: 2 }]);
  let running = 0;
  let most = 0;
  lane.registerHandler('twice', (n) => {
    running++;
    most = Math.max(most, running);
    return {
      then(res) {
        setImmediate(() => {
          running--;
          res(n);
          res(-1);
        });
      },
    };
  });
  lane.start();
  const results = await within(Promise.all([0, 1, 2, 3, 4, 5].map((n) => lane.run('w', 'twice', n))));
  assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
  assert.equal(most, 2);
  assert.equal(lane.stats().lanes[0].completed, 6);
});

test('a max-1 lane survives thenables that call back twice (no uncaught exception, process lives)', () => {
  const script = `
    const { Lane } = require(${JSON.stringify(PACKAGE_DIR)});
    const lane = Lane.withLanes([{ laneId: 'one', minConcurrency: 0, maxConcurrency: 1 }]);
    let running = 0, most = 0;
    const enter = () => { running++; most = Math.max(most, running); };
    lane.registerHandler('syncTwice', (n) => { enter(); return { then(res) { running--; res(n); res(-1); } }; });
    lane.registerHandler('laterTwice', (n) => { enter(); return { then(res) { setImmediate(() => { running--; res(n); res(-1); }); } }; });
    lane.registerHandler('resolveReject', (n) => { enter(); return { then(res, rej) { running--; res(n); rej(new Error('late')); } }; });
    lane.registerHandler('resolveThrow', (n) => { enter(); return { then(res) { running--; res(n); throw new Error('late'); } }; });
    lane.start();
    const jobs = [];
    for (let i = 0; i < 4; i++) {
      for (const type of ['syncTwice', 'laterTwice', 'resolveReject', 'resolveThrow']) jobs.push(lane.run('one', type, i));
    }
    // The synchronous submit, with a thenable: it refuses (WOULD_BLOCK), the
    // command finishes in the background — once.
    const late = lane.drain(10000).then(() => {
      try { lane.submit('one', 'syncTwice', '7'); } catch (e) { if (e.code !== 'ERR_LANE_WOULD_BLOCK') throw e; }
      return lane.drain(10000);
    });
    Promise.all(jobs).then(async (values) => {
      await late;
      const s = lane.stats().lanes[0];
      console.log(JSON.stringify({ values, most, active: s.active, completed: s.completed, failed: s.failed }));
    });
  `;
  const result = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(result.status, 0, `child died: ${result.stderr}`);
  assert.equal(result.stderr, '');
  const report = JSON.parse(result.stdout);
  assert.deepEqual(report.values, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
  assert.equal(report.most, 1);
  assert.equal(report.active, 0);
  assert.equal(report.completed, 17);
  assert.equal(report.failed, 0);
});

test('a max-1 lane survives in-process too: nothing reaches uncaughtException', async () => {
  const uncaught = [];
  const onUncaught = (error) => uncaught.push(error);
  const onUnhandled = (error) => uncaught.push(error);
  // Replace node:test's own listeners for the duration, so a fault is recorded, not fatal.
  const saved = process.listeners('uncaughtException');
  const savedRejection = process.listeners('unhandledRejection');
  process.removeAllListeners('uncaughtException');
  process.removeAllListeners('unhandledRejection');
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUnhandled);
  try {
    const lane = Lane.withLanes([{ laneId: 'one', minConcurrency: 0, maxConcurrency: 1 }]);
    lane.registerHandler('twice', (n) => ({ then(res) { res(n); res(-1); } }));
    lane.start();
    const results = await within(Promise.all([1, 2, 3].map((n) => lane.run('one', 'twice', n))));
    assert.deepEqual(results, [1, 2, 3]);
    await turn(3);
    assert.deepEqual(uncaught, []);
    assert.equal(lane.stats().lanes[0].active, 0);
    assert.equal(lane.stats().lanes[0].completed, 3);
  } finally {
    process.removeListener('uncaughtException', onUncaught);
    process.removeListener('unhandledRejection', onUnhandled);
    for (const l of saved) process.on('uncaughtException', l);
    for (const l of savedRejection) process.on('unhandledRejection', l);
  }
});

test('a thenable whose then getter throws fails its command once', async () => {
  const lane = Lane.withLanes([{ laneId: 'one', minConcurrency: 0, maxConcurrency: 1 }]);
  const boom = new Error('getter');
  let reads = 0;
  lane.registerHandler('getter', () => ({
    get then() {
      reads++;
      throw boom;
    },
  }));
  // The getter hands out a function once, then throws.
  lane.registerHandler('flaky', () => {
    let first = true;
    return {
      get then() {
        if (first) {
          first = false;
          return (res) => res('first read');
        }
        throw boom;
      },
    };
  });
  lane.start();
  await assert.rejects(lane.run('one', 'getter'), (e) => e === boom);
  assert.equal(reads, 1);
  const flaky = await Promise.allSettled([lane.run('one', 'flaky')]);
  assert.equal(flaky[0].status === 'fulfilled' ? flaky[0].value : flaky[0].reason, boom);
  assert.equal(await within(lane.run('one', 'echo', 5)), 5);
  const s = lane.stats().lanes[0];
  assert.deepEqual([s.active, s.failed, s.completed], [0, 2, 1]);
});

test('the synchronous submit: a thenable whose then getter throws fails the command and frees its slot', () => {
  const lane = Lane.withLanes([{ laneId: 'one', minConcurrency: 0, maxConcurrency: 1 }]);
  const boom = new Error('getter');
  lane.registerHandler('getter', () => ({
    get then() {
      throw boom;
    },
  }));
  lane.start();
  assert.throws(() => lane.submit('one', 'getter', '1'), (e) => e === boom);
  const s = lane.stats().lanes[0];
  assert.deepEqual([s.active, s.failed], [0, 1]);
  // The slot is free again: the next submit runs inline.
  assert.equal(lane.submit('one', 'echo', '2'), '2');
});

test('the synchronous submit: a thenable that resolves and throws inside then is still WOULD_BLOCK, ended once', async () => {
  const lane = Lane.withLanes([{ laneId: 'one', minConcurrency: 0, maxConcurrency: 1 }]);
  lane.registerHandler('odd', (n) => ({
    then(res, rej) {
      res(n);
      rej(new Error('late'));
      throw new Error('thrown from then');
    },
  }));
  lane.start();
  assert.throws(() => lane.submit('one', 'odd', '1'), (e) => e instanceof LaneError && e.code === 'ERR_LANE_WOULD_BLOCK');
  await within(lane.drain(1000));
  const s = lane.stats().lanes[0];
  assert.deepEqual([s.active, s.completed, s.failed], [0, 1, 0]);
  assert.equal(lane.submit('one', 'echo', '2'), '2');
});

test('a thenable that never calls back holds its own slot only', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', minConcurrency: 0, maxConcurrency: 2 }]);
  lane.registerHandler('never', () => ({ then() {} }));
  lane.start();
  const stuck = lane.run('w', 'never');
  const results = await within(Promise.all([1, 2, 3, 4, 5].map((n) => lane.run('w', 'echo', n))));
  assert.deepEqual(results, [1, 2, 3, 4, 5]);
  const s = lane.stats().lanes[0];
  assert.deepEqual([s.active, s.completed], [1, 5]);
  // The stuck job cannot be cancelled (it started) and keeps drain waiting.
  assert.equal(lane.cancel(stuck.commandId), false);
  await assert.rejects(lane.drain(20), (e) => e.code === 'ERR_LANE_TIMEOUT' && /1 active/.test(e.message));
});

test('cancel after the end, and cancel twice, free nothing', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', minConcurrency: 0, maxConcurrency: 1 }]);
  let release;
  lane.registerHandler('held', () => new Promise((resolve) => { release = resolve; }));
  lane.start();
  const first = lane.run('w', 'held', 1);
  const second = lane.run('w', 'echo', 2);
  const third = lane.run('w', 'echo', 3);
  await turn();
  assert.equal(lane.cancel(second.commandId), true);
  assert.equal(lane.cancel(second.commandId), false);
  assert.equal(lane.cancel(first.commandId), false);
  await assert.rejects(second, (e) => e.code === 'ERR_LANE_CANCELLED');
  release(1);
  assert.deepEqual(await within(Promise.all([first, third])), [1, 3]);
  assert.equal(lane.cancel(first.commandId), false);
  assert.equal(lane.cancel(third.commandId), false);
  const s = lane.stats().lanes[0];
  assert.deepEqual([s.active, s.pending, s.completed, s.cancelled], [0, 0, 2, 1]);
});
