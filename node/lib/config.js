'use strict';
// Lane configs and queue options: the defaults, and the checks that turn
// what the caller passed into validated lanes, a worker budget and an event
// capacity (or a LaneError naming the problem).

const { configError, typeName } = require('./errors');

// The six default lanes: [laneId, priority, maxConcurrency]; min is 1 each.
const DEFAULT_LANES = Object.freeze([
  ['system', 0, 5],
  ['control', 1, 3],
  ['query', 2, 10],
  ['session', 3, 5],
  ['skill', 4, 3],
  ['prompt', 5, 2],
]);

// The same lanes as frozen lane configs: the package's DEFAULT_LANES export.
const DEFAULT_LANE_CONFIGS = Object.freeze(
  DEFAULT_LANES.map(([laneId, priority, maxConcurrency]) =>
    Object.freeze({ laneId, priority, minConcurrency: 1, maxConcurrency })),
);

// withLanes() defaults, as the Python SDK's LaneConfig has them.
const DEFAULT_PRIORITY = 0;
const DEFAULT_MIN_CONCURRENCY = 1;
const DEFAULT_MAX_CONCURRENCY = 10;
// Default worker budget: every lane can reach its max, capped here (never
// below the lanes' reservations) — the same rule as the Python package.
const DEFAULT_WORKER_CAP = 64;
const DEFAULT_EVENT_CAPACITY = 65_536;
const MAX_PRIORITY = 2 ** 31 - 1;
const MAX_U32 = 2 ** 32 - 1;

const CONFIG_FIELDS = ['laneId', 'priority', 'minConcurrency', 'maxConcurrency'];
// Redis mode only: enforced by the lane rules in Redis (lanes.lua) and the
// workers, the same fields as the Python package's LaneConfig.
const REDIS_CONFIG_FIELDS = ['timeoutMs', 'retry', 'rateLimit', 'priorityBoost'];
const MAX_BOOST_WINDOWS = 8;
const MAX_MS = 1e15;
const OPTION_FIELDS = ['lanes', 'maxWorkers', 'eventCapacity', 'redis', 'queue', 'leaseMs'];
// Redis mode (lib/redis): the queue name when none is given, and the lease.
const DEFAULT_QUEUE = 'default';
const DEFAULT_LEASE_MS = 10_000;
const MIN_LEASE_MS = 300;

function quote(laneId) {
  return `'${laneId}'`;
}

function checkInteger(value, name, minimum, maximum, where) {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw configError(`${name}${where} must be an integer, got ${typeName(value)} ${String(value)}`);
  }
  if (value < minimum || value > maximum) {
    throw configError(`${name}${where} must be between ${minimum} and ${maximum}, got ${value}`);
  }
  return value;
}

function checkNumber(value, name, where, { min = 0, above = false, max = MAX_MS } = {}) {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw configError(`${name}${where} must be a finite number, got ${typeName(value)} ${String(value)}`);
  }
  if (above ? value <= min : value < min) {
    throw configError(`${name}${where} must be ${above ? 'greater than' : 'at least'} ${min}, got ${value}`);
  }
  if (value > max) throw configError(`${name}${where} must be at most ${max}, got ${value}`);
  return value;
}

function checkFields(object, name, allowed, where) {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw configError(`${name}${where} must be an object like { ${allowed.join(', ')} }, got ${typeName(object)}`);
  }
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) throw configError(`unknown field '${key}' in ${name}${where} (it takes ${allowed.join(', ')})`);
  }
}

/** The Redis-mode lane options, checked as the Python package checks them. */
function checkRedisLaneOptions(config, where) {
  const out = {};
  if (config.timeoutMs !== undefined) {
    out.timeoutMs = checkNumber(config.timeoutMs, 'timeoutMs', where, { above: true });
  }
  if (config.retry !== undefined) {
    const r = config.retry;
    checkFields(r, 'retry', ['maxRetries', 'initialDelayMs', 'maxDelayMs', 'multiplier'], where);
    const maxRetries = checkInteger(r.maxRetries, 'retry.maxRetries', 0, 2 ** 31 - 1, where);
    const initialDelayMs = r.initialDelayMs === undefined ? 0 : checkNumber(r.initialDelayMs, 'retry.initialDelayMs', where);
    const maxDelayMs = r.maxDelayMs === undefined ? initialDelayMs : checkNumber(r.maxDelayMs, 'retry.maxDelayMs', where);
    const multiplier = r.multiplier === undefined ? 1 : checkNumber(r.multiplier, 'retry.multiplier', where, { min: 1 });
    if (maxDelayMs < initialDelayMs) {
      throw configError(`retry.maxDelayMs (${maxDelayMs}) is below retry.initialDelayMs (${initialDelayMs})${where}`);
    }
    out.retry = Object.freeze({ maxRetries, initialDelayMs, maxDelayMs, multiplier });
  }
  if (config.rateLimit !== undefined) {
    const r = config.rateLimit;
    checkFields(r, 'rateLimit', ['maxCommands', 'windowMs'], where);
    const maxCommands = checkInteger(r.maxCommands, 'rateLimit.maxCommands', 0, Number.MAX_SAFE_INTEGER, where);
    const windowMs = checkNumber(r.windowMs, 'rateLimit.windowMs', where, { min: 1e-6 });
    out.rateLimit = Object.freeze({ maxCommands, windowMs });
  }
  if (config.priorityBoost !== undefined) {
    const b = config.priorityBoost;
    checkFields(b, 'priorityBoost', ['deadlineMs', 'intervals'], where);
    const deadlineMs = checkNumber(b.deadlineMs, 'priorityBoost.deadlineMs', where, { above: true });
    const intervals = b.intervals === undefined ? [] : b.intervals;
    if (!Array.isArray(intervals) || intervals.length > MAX_BOOST_WINDOWS) {
      throw configError(`priorityBoost.intervals${where} must be an array of at most ${MAX_BOOST_WINDOWS} ` +
        '[beforeDeadlineMs, boost] pairs');
    }
    const pairs = intervals.map((pair, i) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw configError(`priorityBoost.intervals[${i}]${where} must be a [beforeDeadlineMs, boost] pair`);
      }
      return Object.freeze([
        checkNumber(pair[0], `priorityBoost.intervals[${i}][0]`, where),
        checkInteger(pair[1], `priorityBoost.intervals[${i}][1]`, 0, 2 ** 31 - 1, where),
      ]);
    });
    out.priorityBoost = Object.freeze({ deadlineMs, intervals: Object.freeze(pairs) });
  }
  return out;
}

function checkLaneConfig(config, position, redisMode) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw configError(
      `lane config #${position} must be an object like { laneId, priority, minConcurrency, ` +
        `maxConcurrency }, got ${typeName(config)}`,
    );
  }
  const { laneId } = config;
  if (typeof laneId !== 'string') {
    throw configError(`laneId of lane config #${position} must be a string, got ${typeName(laneId)}`);
  }
  if (!laneId) throw configError(`laneId of lane config #${position} must not be empty`);
  const where = ` of lane ${quote(laneId)}`;
  for (const key of Object.keys(config)) {
    if (REDIS_CONFIG_FIELDS.includes(key) && !redisMode && config[key] !== undefined) {
      throw configError(
        `${key}${where} is an option of Redis mode (enforced by the lane rules in Redis); the in-process ` +
          'engine has no such option: give redis too, or leave it out',
      );
    }
    if (!CONFIG_FIELDS.includes(key) && !REDIS_CONFIG_FIELDS.includes(key)) {
      throw configError(
        `unknown field '${key}'${where} (lane configs take ${CONFIG_FIELDS.join(', ')}; in Redis mode also ` +
          `${REDIS_CONFIG_FIELDS.join(', ')})`,
      );
    }
  }
  const priority = checkInteger(
    config.priority === undefined ? DEFAULT_PRIORITY : config.priority, 'priority', 0, MAX_PRIORITY, where,
  );
  const min = checkInteger(
    config.minConcurrency === undefined ? DEFAULT_MIN_CONCURRENCY : config.minConcurrency,
    'minConcurrency', 0, MAX_U32, where,
  );
  const max = checkInteger(
    config.maxConcurrency === undefined ? DEFAULT_MAX_CONCURRENCY : config.maxConcurrency,
    'maxConcurrency', 1, MAX_U32, where,
  );
  if (min > max) {
    throw configError(`minConcurrency (${min}) exceeds maxConcurrency (${max})${where}`);
  }
  const extra = redisMode ? checkRedisLaneOptions(config, where) : {};
  return { laneId, priority, minConcurrency: min, maxConcurrency: max, ...extra };
}

function checkOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw configError(`options must be an object, got ${typeName(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_FIELDS.includes(key)) {
      throw configError(`unknown option '${key}' (options are ${OPTION_FIELDS.join(', ')})`);
    }
  }
  return options;
}

/**
 * What `new Lane(options)` is built from: the checked lane configs (the six
 * defaults unless `options.lanes`), the worker budget and the event capacity.
 * Duplicate lane ids are found when the lanes are added to the engine.
 */
function resolveOptions(options) {
  options = checkOptions(options);
  const configs = options.lanes === undefined
    ? DEFAULT_LANES.map(([laneId, priority, maxConcurrency]) => ({
      laneId, priority, minConcurrency: 1, maxConcurrency,
    }))
    : options.lanes;
  if (!Array.isArray(configs)) {
    throw configError(`lanes must be an array of lane configs, got ${typeName(configs)}`);
  }
  if (configs.length === 0) throw configError('at least one lane is needed');
  const redisMode = options.redis !== undefined && options.redis !== null;
  const lanes = configs.map((config, i) => checkLaneConfig(config, i, redisMode));

  let workers = 0;
  if (options.maxWorkers !== undefined) {
    workers = checkInteger(options.maxWorkers, 'maxWorkers', 1, MAX_U32, '');
  }
  let capacity = DEFAULT_EVENT_CAPACITY;
  if (options.eventCapacity !== undefined) {
    capacity = checkInteger(options.eventCapacity, 'eventCapacity', 1, 2 ** 30, '');
  }
  const redis = resolveRedisOptions(options, lanes);
  const reserved = lanes.reduce((sum, l) => sum + l.minConcurrency, 0);
  if (workers && reserved > workers) {
    throw configError(
      `the lanes' minConcurrency reservations (${reserved}) exceed maxWorkers (${workers}); ` +
        'raise maxWorkers or lower minConcurrency',
    );
  }
  if (!workers) {
    const wanted = lanes.reduce((sum, l) => sum + l.maxConcurrency, 0);
    workers = Math.max(1, reserved, Math.min(wanted, DEFAULT_WORKER_CAP));
  }
  return { lanes, workers, capacity, redis };
}

/**
 * `{ redis, queue, leaseMs }`: a Lane on a Redis queue shared across
 * processes (lib/redis), or null for the in-process queue. Checked here, so
 * a bad option is a LaneError naming it before anything connects.
 */
function resolveRedisOptions(options, lanes) {
  if (options.redis === undefined || options.redis === null) {
    for (const name of ['queue', 'leaseMs']) {
      if (options[name] !== undefined) {
        throw configError(`${name} is an option of Redis mode: give redis (a URL like 'redis://host:6379/0') too`);
      }
    }
    return null;
  }
  // Only Redis mode loads these (and, on first connect, the redis package).
  const { checkUrl, checkQueueName, checkLaneKey } = require('./redis/connection');
  const url = checkUrl(options.redis);
  const queue = checkQueueName(options.queue === undefined ? DEFAULT_QUEUE : options.queue);
  let leaseMs = DEFAULT_LEASE_MS;
  if (options.leaseMs !== undefined) {
    const value = options.leaseMs;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < MIN_LEASE_MS) {
      throw configError(`leaseMs must be a number of milliseconds, at least ${MIN_LEASE_MS}, got ${typeName(value)} ${String(value)}`);
    }
    leaseMs = value;
  }
  for (const lane of lanes) checkLaneKey(lane.laneId);
  return { url, queue, leaseMs };
}

module.exports = {
  DEFAULT_LANE_CONFIGS,
  quote,
  checkOptions,
  resolveOptions,
};
