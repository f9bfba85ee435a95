'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { loadScenarios, parseScenario, replayOnEngine, replayOnLane, ScenarioError } = require('./scenario');

const scenarios = loadScenarios();

test('the shared scenarios are found', () => {
  assert.ok(scenarios.length >= 12, `found ${scenarios.length} scenarios`);
});

for (const scenario of scenarios) {
  test(`scenario ${scenario.name} on the engine binding`, () => {
    replayOnEngine(scenario);
  });
  test(`scenario ${scenario.name} through the Lane class`, async () => {
    await replayOnLane(scenario);
  });
}

test('a replayer catches a wrong expectation', async () => {
  const wrong = parseScenario('wrong', 'lane a 0 0 2\nlane b 1 0 2\nsubmit b x\nsubmit a y\ndispatch x y\n');
  assert.throws(() => replayOnEngine(wrong), /wrong:5: dispatched \[y x\], expected \[x y\]/);
  await assert.rejects(replayOnLane(wrong), /wrong:5 \(Lane\): started \[y x\], expected \[x y\]/);
  const stats = parseScenario('stats', 'lane a 0 0 1\nsubmit a x y\ndispatch x\nstats a pending=2\n');
  assert.throws(() => replayOnEngine(stats), /stats:4: stats a pending=1, expected 2/);
});

test('malformed scenario files are refused, not skipped', () => {
  const bad = {
    'unknown command': 'lane a 0 0 1\nfrobnicate a\n',
    'undeclared lane': 'submit nowhere t1\n',
    'undeclared ticket': 'lane a 0 0 1\ndispatch t9\n',
    'duplicate lane': 'lane a 0 0 1\nlane a 1 0 1\n',
    'duplicate ticket': 'lane a 0 0 1\nsubmit a t1 t1\n',
    'bad number': 'lane a x 0 1\n',
    'workers not first': 'lane a 0 0 1\nworkers 2\n',
    'missing argument': 'lane a 0 0\n',
    'bad cancel': 'lane a 0 0 1\nsubmit a t\ncancel t maybe\n',
    'bad stats key': 'lane a 0 0 1\nstats a running=1\n',
  };
  for (const [what, text] of Object.entries(bad)) {
    assert.throws(() => parseScenario('bad', text), ScenarioError, what);
  }
  // Comments, blank lines, CRLF and tabs are fine; line numbers count them all.
  const ok = parseScenario('ok', '# c\n\r\nworkers 1\t# one\nlane\ta 0 0 1\r\nsubmit a t # x\n');
  assert.equal(ok.workers, 1);
  assert.equal(ok.steps.at(-1).line, 5);
});
