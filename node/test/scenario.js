'use strict';
// The shared scheduling scenarios (tests/scenarios/*.scn, format in
// tests/scenarios/README.md): a strict parser and two replayers, one on the
// raw engine binding and one through the Lane class, so the Node package
// and the C and Python replays cannot drift.

const fs = require('node:fs');
const path = require('node:path');
const { Lane, _native } = require('@a3s-lab/lane');

const SCENARIO_DIR = path.join(__dirname, '..', '..', 'tests', 'scenarios');
const STAT_KEYS = ['pending', 'active', 'submitted', 'dispatched', 'completed', 'failed', 'cancelled', 'paused'];

class ScenarioError extends Error {}

function isName(token) {
  return /^[^#=\s]+$/.test(token);
}

function number(token, fail) {
  if (!/^\d+$/.test(token)) fail(`'${token}' is not a non-negative decimal integer`);
  return Number(token);
}

/**
 * Parses a scenario into steps, checking every rule of the format: unknown
 * commands, arity, numbers, names declared once and before use, `workers`
 * first. Returns { name, workers, lanes, steps }.
 */
function parseScenario(name, text) {
  const lanes = new Map(); // name -> { index, priority, min, max }
  const tickets = new Map(); // name -> lane name
  const steps = [];
  let workers = 0;
  let commands = 0;
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const fail = (message) => {
      throw new ScenarioError(`${name}:${line}: ${message}`);
    };
    const tokens = raw.replace(/\r$/, '').replace(/#.*$/, '').trim().split(/[ \t]+/).filter(Boolean);
    if (tokens.length === 0) return;
    const [command, ...args] = tokens;
    commands++;
    const lane = (token) => {
      if (!lanes.has(token)) fail(`undeclared lane '${token}'`);
      return token;
    };
    const ticket = (token) => {
      if (!tickets.has(token)) fail(`undeclared ticket '${token}'`);
      return token;
    };
    switch (command) {
      case 'workers':
        if (commands !== 1) fail('workers must be the first command');
        if (args.length !== 1) fail('workers takes one number');
        workers = number(args[0], fail);
        return;
      case 'lane': {
        if (args.length !== 4) fail('lane takes <name> <priority> <min> <max>');
        const [laneName, ...nums] = args;
        if (!isName(laneName)) fail(`bad lane name '${laneName}'`);
        if (lanes.has(laneName)) fail(`lane '${laneName}' declared twice`);
        const [priority, min, max] = nums.map((t) => number(t, fail));
        lanes.set(laneName, { index: lanes.size, priority, min, max });
        steps.push({ line, command, lane: laneName, priority, min, max });
        return;
      }
      case 'submit': {
        if (args.length < 2) fail('submit takes a lane and at least one ticket');
        const laneName = lane(args[0]);
        for (const t of args.slice(1)) {
          if (!isName(t)) fail(`bad ticket name '${t}'`);
          if (tickets.has(t)) fail(`ticket '${t}' declared twice`);
          tickets.set(t, laneName);
        }
        steps.push({ line, command, lane: laneName, tickets: args.slice(1) });
        return;
      }
      case 'dispatch':
        steps.push({ line, command, tickets: args.map(ticket) });
        return;
      case 'complete':
      case 'fail':
        if (args.length < 1) fail(`${command} takes at least one ticket`);
        steps.push({ line, command, tickets: args.map(ticket) });
        return;
      case 'cancel':
        if (args.length !== 2 || !['yes', 'no'].includes(args[1])) fail('cancel takes <ticket> yes|no');
        steps.push({ line, command, ticket: ticket(args[0]), expect: args[1] === 'yes' ? 1 : 0 });
        return;
      case 'pause':
      case 'resume':
        if (args.length !== 1) fail(`${command} takes one lane`);
        steps.push({ line, command, lane: lane(args[0]) });
        return;
      case 'stats': {
        if (args.length < 2) fail('stats takes a lane and at least one key=value');
        const expect = {};
        for (const pair of args.slice(1)) {
          const match = /^([a-z]+)=(\d+)$/.exec(pair);
          if (!match || !STAT_KEYS.includes(match[1])) fail(`bad stats pair '${pair}'`);
          expect[match[1]] = Number(match[2]);
        }
        steps.push({ line, command, lane: lane(args[0]), expect });
        return;
      }
      default:
        fail(`unknown command '${command}'`);
    }
  });
  return { name, workers, lanes, tickets, steps };
}

function loadScenarios() {
  return fs.readdirSync(SCENARIO_DIR)
    .filter((file) => file.endsWith('.scn'))
    .sort()
    .map((file) => parseScenario(file.slice(0, -4), fs.readFileSync(path.join(SCENARIO_DIR, file), 'utf8')));
}

function where(scenario, step) {
  return `${scenario.name}:${step.line}`;
}

/** Replays a scenario on the raw engine binding, checking every field. */
function replayOnEngine(scenario) {
  const { Engine, codes } = _native;
  const engine = new Engine(scenario.workers);
  const laneIndex = new Map();
  const tickets = new Map(); // name -> { lane, id, time, state }
  let now = 0;
  let nextId = 1;
  const check = (step, ok, message) => {
    if (!ok) throw new ScenarioError(`${where(scenario, step)}: ${message}`);
  };
  for (const step of scenario.steps) {
    switch (step.command) {
      case 'lane': {
        const index = engine.addLane(step.priority, step.min, step.max);
        check(step, index === laneIndex.size, `lc_lane_add returned ${index}, expected ${laneIndex.size}`);
        laneIndex.set(step.lane, index);
        break;
      }
      case 'submit':
        for (const name of step.tickets) {
          now += 1;
          const t = { lane: laneIndex.get(step.lane), id: nextId++, time: now, state: 'pending' };
          tickets.set(name, t);
          const rc = engine.submit(t.lane, t.id, now);
          check(step, rc === codes.OK, `lc_submit(${name}) returned ${rc}`);
        }
        break;
      case 'dispatch': {
        const got = [];
        for (let d = engine.tryNextDispatch(); d !== null; d = engine.tryNextDispatch()) got.push(d);
        const names = got.map((d) => [...tickets].find(([, t]) => t.id === d.ticket)?.[0] ?? `#${d.ticket}`);
        check(step, names.join(' ') === step.tickets.join(' '),
          `dispatched [${names.join(' ')}], expected [${step.tickets.join(' ')}]`);
        got.forEach((d, i) => {
          const t = tickets.get(step.tickets[i]);
          check(step, d.lane === t.lane, `${step.tickets[i]} came from lane ${d.lane}, expected ${t.lane}`);
          check(step, d.enqueuedNs === t.time, `${step.tickets[i]} enqueued_ns ${d.enqueuedNs}, expected ${t.time}`);
          t.state = 'running';
        });
        break;
      }
      case 'complete':
      case 'fail':
        for (const name of step.tickets) {
          const t = tickets.get(name);
          check(step, t.state === 'running', `${name} is ${t.state}, not running (the scenario is wrong)`);
          const outcome = step.command === 'complete' ? codes.OUTCOME_COMPLETED : codes.OUTCOME_FAILED;
          const rc = engine.complete(t.lane, outcome);
          check(step, rc === codes.OK, `lc_complete(${name}) returned ${rc}`);
          t.state = 'done';
        }
        break;
      case 'cancel': {
        const t = tickets.get(step.ticket);
        const rc = engine.cancel(t.lane, t.id);
        check(step, rc === step.expect, `lc_cancel(${step.ticket}) returned ${rc}, expected ${step.expect}`);
        if (rc === 1) t.state = 'cancelled';
        break;
      }
      case 'pause':
      case 'resume': {
        const rc = engine[step.command](laneIndex.get(step.lane));
        check(step, rc === codes.OK, `lc_${step.command} returned ${rc}`);
        break;
      }
      case 'stats': {
        const s = engine.laneStats(laneIndex.get(step.lane));
        for (const [key, value] of Object.entries(step.expect)) {
          const actual = key === 'paused' ? Number(s.paused) : s[key];
          check(step, actual === value, `stats ${step.lane} ${key}=${actual}, expected ${value}`);
        }
        break;
      }
      default:
        throw new ScenarioError(`${where(scenario, step)}: unhandled ${step.command}`);
    }
  }
}

/**
 * Replays a scenario through the Lane class: submits are lane.run() calls,
 * "dispatch" runs the pump (manual dispatch mode) and checks which handlers
 * started, "complete"/"fail" settle a handler's promise, "cancel" is
 * lane.cancel(commandId), "stats" reads lane.stats().
 */
async function replayOnLane(scenario) {
  const configs = [...scenario.lanes].map(([laneId, l]) => ({
    laneId, priority: l.priority, minConcurrency: l.min, maxConcurrency: l.max,
  }));
  const lane = Lane.withLanes(configs, scenario.workers ? { maxWorkers: scenario.workers } : undefined);
  const started = [];
  const gates = new Map();
  lane.registerHandler('scn', (name) => {
    started.push(name);
    return new Promise((resolve, reject) => gates.set(name, { resolve, reject }));
  });
  lane._setManualDispatch(true);
  lane.start();
  const jobs = new Map(); // name -> { promise, state }
  const flush = () => new Promise((resolve) => setImmediate(resolve));
  const check = (step, ok, message) => {
    if (!ok) throw new ScenarioError(`${where(scenario, step)} (Lane): ${message}`);
  };
  for (const step of scenario.steps) {
    switch (step.command) {
      case 'lane':
        check(step, lane.laneIds.indexOf(step.lane) === [...scenario.lanes.keys()].indexOf(step.lane), 'lane order');
        break;
      case 'submit':
        for (const name of step.tickets) {
          const promise = lane.run(step.lane, 'scn', name);
          const job = { promise, settled: null, value: undefined };
          promise.then((v) => {
            job.settled = 'fulfilled';
            job.value = v;
          }, (e) => {
            job.settled = 'rejected';
            job.value = e;
          });
          jobs.set(name, job);
        }
        await flush();
        check(step, started.length === 0, `started [${started.join(' ')}] without a dispatch`);
        break;
      case 'dispatch':
        started.length = 0;
        lane._dispatchNow();
        check(step, started.join(' ') === step.tickets.join(' '),
          `started [${started.join(' ')}], expected [${step.tickets.join(' ')}]`);
        started.length = 0;
        break;
      case 'complete':
      case 'fail':
        for (const name of step.tickets) {
          const gate = gates.get(name);
          check(step, gate !== undefined, `${name} is not running`);
          gates.delete(name);
          if (step.command === 'complete') gate.resolve(name);
          else gate.reject(new Error(`fail ${name}`));
        }
        await flush();
        for (const name of step.tickets) {
          const job = jobs.get(name);
          const want = step.command === 'complete' ? 'fulfilled' : 'rejected';
          check(step, job.settled === want, `${name} is ${job.settled}, expected ${want}`);
        }
        check(step, started.length === 0, `started [${started.join(' ')}] without a dispatch`);
        break;
      case 'cancel': {
        const job = jobs.get(step.ticket);
        const result = lane.cancel(job.promise.commandId);
        check(step, result === Boolean(step.expect), `cancel(${step.ticket}) returned ${result}`);
        await flush();
        if (result) {
          check(step, job.settled === 'rejected' && job.value.code === 'ERR_LANE_CANCELLED',
            `${step.ticket} was not rejected as cancelled`);
        }
        break;
      }
      case 'pause':
        lane.pauseLane(step.lane);
        break;
      case 'resume':
        lane.resumeLane(step.lane);
        await flush();
        check(step, started.length === 0, `resume started [${started.join(' ')}] without a dispatch`);
        break;
      case 'stats': {
        const s = lane.stats().lanes.find((l) => l.laneId === step.lane);
        for (const [key, value] of Object.entries(step.expect)) {
          const actual = key === 'paused' ? Number(s.paused) : s[key];
          check(step, actual === value, `stats ${step.lane} ${key}=${actual}, expected ${value}`);
        }
        break;
      }
      default:
        throw new ScenarioError(`${where(scenario, step)}: unhandled ${step.command}`);
    }
  }
  // Let the rest run to the end: automatic dispatch from here.
  lane._setManualDispatch(false);
  for (const gate of gates.values()) gate.resolve();
  await flush();
}

module.exports = { parseScenario, loadScenarios, replayOnEngine, replayOnLane, ScenarioError, SCENARIO_DIR };
