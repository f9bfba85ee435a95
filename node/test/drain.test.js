'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { Lane, LaneError } = require('@a3s-lab/lane');
const { deferred, within, turn, collect } = require('./helpers');

test('drain resolves once every queued and running command has finished', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 3 }]);
  let done = 0;
  lane.registerHandler('work', async () => {
    await turn();
    done++;
  });
  lane.start();
  for (let i = 0; i < 100; i++) lane.run('w', 'work');
  await within(lane.drain(10_000));
  assert.equal(done, 100);
  assert.deepEqual([lane.stats().totalPending, lane.stats().totalActive], [0, 0]);
  // Idle already: resolves at once; without a timeout too.
  await within(lane.drain());
});

test('drain times out with a message saying what is left', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', minConcurrency: 0, maxConcurrency: 1 }]);
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.start();
  const jobs = [lane.run('w', 'held'), lane.run('w', 'held'), lane.run('w', 'held')];
  await assert.rejects(lane.drain(20), (error) => {
    assert.ok(error instanceof LaneError);
    assert.equal(error.code, 'ERR_LANE_TIMEOUT');
    assert.equal(error.message, 'drain timed out after 20ms with 2 pending and 1 active (w: 2 pending, 1 active)');
    return true;
  });
  gate.resolve();
  await within(Promise.all(jobs));
  await within(lane.drain(1000));
});

test('drain before start with queued work rejects instead of waiting forever', async () => {
  const lane = new Lane();
  lane.run('query', 'x').catch(() => {});
  await assert.rejects(lane.drain(1000), (e) => e.code === 'ERR_LANE_NOT_STARTED' && /call start\(\) before drain\(\)/.test(e.message));
  lane.start();
  await within(lane.drain(1000));
});

test('drain rejects a bad timeout', async () => {
  const lane = new Lane();
  await assert.rejects(lane.drain(-1), LaneError);
  await assert.rejects(lane.drain('5'), /non-negative number of milliseconds/);
});

test('drain rejects NaN, negative and non-number timeouts with a LaneError naming timeoutMs', async () => {
  const lane = new Lane();
  lane.start();
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  const job = lane.run('query', 'held');
  for (const bad of [NaN, -1, -Infinity, -0.5, '5', '', true, {}, [], 10n, Symbol('s'), () => 1]) {
    let result;
    assert.doesNotThrow(() => {
      result = lane.drain(bad);
    }, 'drain() never throws: bad input rejects');
    await assert.rejects(result, (error) => {
      assert.ok(error instanceof LaneError, `expected a LaneError for ${typeof bad}, got ${error}`);
      assert.equal(error.code, 'ERR_LANE_INVALID_ARGUMENT');
      assert.match(error.message, /timeoutMs/);
      assert.match(error.message, /non-negative number of milliseconds/);
      return true;
    });
  }
  // Nothing changed: the job still runs and a good drain waits for it.
  gate.resolve(1);
  assert.equal(await within(job), 1);
  await within(lane.drain(1000));
});

function watchTimerWarnings() {
  const warnings = [];
  const onWarning = (warning) => {
    if (warning.name === 'TimeoutOverflowWarning' || /TimeoutOverflow|does not fit into a 32-bit/.test(warning.message)) {
      warnings.push(warning);
    }
  };
  process.on('warning', onWarning);
  return { warnings, stop: () => process.removeListener('warning', onWarning) };
}

for (const timeout of [2 ** 31, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE]) {
  test(`drain(${timeout}) waits for the work: no 1 ms timeout, no TimeoutOverflowWarning`, async () => {
    const watch = watchTimerWarnings();
    try {
      const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 1 }]);
      const gate = deferred();
      lane.registerHandler('slow', () => gate.promise);
      lane.start();
      const job = lane.run('w', 'slow', null);
      const order = [];
      job.then(() => order.push('job'));
      const drained = lane.drain(timeout).then(
        () => order.push('drained'),
        (error) => order.push(`rejected: ${error.message}`),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(order, [], 'drain settled before the work finished');
      gate.resolve('done');
      assert.equal(await within(job), 'done');
      await within(drained);
      assert.deepEqual(order, ['job', 'drained']);
      await turn(2);
      assert.deepEqual(watch.warnings.map((w) => w.message), []);
    } finally {
      watch.stop();
    }
  });
}

test('drain(Infinity) means no limit, as no timeout does', async () => {
  const watch = watchTimerWarnings();
  try {
    const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 1 }]);
    const gate = deferred();
    lane.registerHandler('slow', () => gate.promise);
    lane.start();
    const job = lane.run('w', 'slow', null);
    let settled = false;
    const drained = lane.drain(Infinity).finally(() => {
      settled = true;
    });
    const plain = lane.drain();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(settled, false);
    gate.resolve();
    await within(Promise.all([job, drained, plain]));
    // Idle: Infinity resolves at once as well.
    await within(lane.drain(Infinity), 1000);
    await turn(2);
    assert.deepEqual(watch.warnings, []);
  } finally {
    watch.stop();
  }
});

test('drain(0) on a busy queue times out at once; on an idle one resolves', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 1 }]);
  await within(lane.drain(0));
  const gate = deferred();
  lane.registerHandler('slow', () => gate.promise);
  lane.start();
  const job = lane.run('w', 'slow');
  await turn();
  await assert.rejects(lane.drain(0), (e) => e.code === 'ERR_LANE_TIMEOUT');
  gate.resolve();
  await within(job);
});

test('long timers chain past the largest setTimeout delay and fire once, on time', async () => {
  // With a small "largest delay" the chaining is seen in milliseconds.
  const { setLongTimeout, MAX_TIMER_DELAY } = require('../lib/timers');
  assert.equal(MAX_TIMER_DELAY, 2 ** 31 - 1);
  const started = performance.now();
  let fired = 0;
  await within(new Promise((resolve) => {
    setLongTimeout(() => {
      fired++;
      resolve();
    }, 60, 7);
  }));
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 60, `fired after ${elapsed} ms, wanted 60`);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(fired, 1);

  // Cleared in the middle of the chain: never fires.
  let cleared = 0;
  const timer = setLongTimeout(() => cleared++, 40, 7);
  await new Promise((resolve) => setTimeout(resolve, 15));
  timer.clear();
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(cleared, 0);
});

test('shutdown, then drain: queued work finishes, shutdown.complete is the last event', async () => {
  const lane = Lane.withLanes([{ laneId: 'w', maxConcurrency: 2 }]);
  lane.registerHandler('work', async (n) => {
    await turn();
    return n;
  });
  lane.start();
  const c = collect(lane);
  const jobs = Array.from({ length: 10 }, (_, i) => lane.run('w', 'work', i));
  lane.shutdown();
  lane.shutdown(); // once only
  const drained = lane.drain(10_000);
  assert.deepEqual(await within(Promise.all(jobs)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await within(drained);
  const keys = c.keys();
  assert.equal(keys.filter((k) => k === 'queue.shutdown.started').length, 1);
  assert.equal(keys.at(-1), 'queue.shutdown.complete');
  assert.equal(keys.filter((k) => k === 'queue.command.completed').length, 10);
  assert.equal(lane.isShuttingDown, true);
  // A second drain is fine and emits nothing more.
  await within(lane.drain(1000));
  assert.equal(c.events.length, keys.length);
});

test('several drains wait together', async () => {
  const lane = new Lane();
  const gate = deferred();
  lane.registerHandler('held', () => gate.promise);
  lane.start();
  const job = lane.run('query', 'held');
  const a = lane.drain(10_000);
  const b = lane.drain();
  await turn();
  gate.resolve(1);
  await within(Promise.all([a, b, job]));
});
