'use strict';
// @a3s-lab/lane — a lane-based priority command queue on the a3s-lane C engine.
//
// This file only gathers the public API; the code lives in lib/:
//   lib/lane.js     — the Lane class: submit, dispatch, cancel, drain, stats;
//   lib/events.js   — event keys (EVENTS), buffering and delivery to subscribers;
//   lib/jobs.js     — Job, the handler's context, payload and submit-option checks;
//   lib/config.js   — lane configs and options: defaults and validation;
//   lib/timers.js   — user-given durations: checks, and timers past setTimeout's limit;
//   lib/errors.js   — LaneError and the error helpers;
//   lib/binding.js  — loading the native addon (the engine and its codes);
//   lib/prebuild.js — where the addon comes from: a local build or the shipped prebuild.

const { Lane } = require('./lib/lane');
const { LaneError } = require('./lib/errors');
const { EVENTS } = require('./lib/events');
const { DEFAULT_LANE_CONFIGS } = require('./lib/config');
const { native } = require('./lib/binding');

module.exports = {
  Lane,
  LaneError,
  EVENTS,
  DEFAULT_LANES: DEFAULT_LANE_CONFIGS,
  // The raw engine binding (lanes, tickets, counters), for tests and tools.
  // Not a stable API.
  _native: native,
};
