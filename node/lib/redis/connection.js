'use strict';
// Talking to Redis: the `redis` package (loaded lazily: only Redis mode
// needs it), clients with bounded connects and back-off reconnects, the
// a3s_lane function library (loaded once, checked by version), key names,
// and one method per Lua function with Redis's errors turned into LaneErrors.
//
// The rules live in ONE file, pylane/redis/lanes.lua in the repository; the
// npm package carries a copy made at pack time (scripts/vendor.js), found
// first here. Nothing in this module re-states a rule: it only calls them.

const fs = require('node:fs');
const path = require('node:path');
const { LaneError, configError, typeName } = require('../errors');

const LIBRARY_NAME = 'a3s_lane';
// The copy shipped in the tarball, then the repository's own file.
const LUA_CANDIDATES = [
  path.join(__dirname, '..', '..', 'lua', 'lanes.lua'),
  path.join(__dirname, '..', '..', '..', 'pylane', 'redis', 'lanes.lua'),
];
// Bounded waits: an unreachable Redis fails start() within CONNECT_TIMEOUT_MS.
const CONNECT_TIMEOUT_MS = 3000;
// A request (not a blocking read) that gets no reply within this fails.
const COMMAND_TIMEOUT_MS = 10_000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5000;
const MAX_QUEUE_NAME = 128;
const MAX_LANE_ID = 200;
const BAD_NAME = /[{}\s\x00-\x1f\x7f]/;
const BAD_LANE = /[\x00-\x1f\x7f]/;

// ---- the `redis` package ----------------------------------------------------

let redisModule = null;

/** The `redis` package, required on first use; a clear LaneError without it. */
function loadRedis() {
  if (redisModule !== null) return redisModule;
  try {
    redisModule = require('redis');
  } catch (error) {
    if (error && error.code === 'MODULE_NOT_FOUND' && /'redis'/.test(error.message)) {
      throw new LaneError(
        'ERR_LANE_REDIS_CLIENT_MISSING',
        'Redis mode needs the "redis" package (an optional peer dependency of @a3s-lab/lane): ' +
          'npm install redis',
      );
    }
    throw error;
  }
  return redisModule;
}

// ---- the Lua library ----------------------------------------------------------

let sourceCache = null;

function luaFile() {
  const found = LUA_CANDIDATES.find((file) => fs.existsSync(file));
  if (!found) {
    throw new LaneError('ERR_LANE_REDIS', `the lane rules (lanes.lua) are missing: looked at ${LUA_CANDIDATES.join(', ')}`);
  }
  return found;
}

/** The library's text, as the file holds it. */
function librarySource() {
  if (sourceCache === null) sourceCache = fs.readFileSync(luaFile(), 'utf8');
  return sourceCache;
}

/** [VERSION, COMPATIBLE_FROM] as the Lua file declares them. */
function libraryVersions(source = librarySource()) {
  const version = /^local VERSION = (\d+)/m.exec(source);
  const compatible = /^local COMPATIBLE_FROM = (\d+)/m.exec(source);
  if (!version || !compatible) throw new LaneError('ERR_LANE_REDIS', 'lanes.lua declares no VERSION / COMPATIBLE_FROM');
  return [Number(version[1]), Number(compatible[1])];
}

// ---- names and checks -----------------------------------------------------------

/** A queue name becomes the hash tag of every key. */
function checkQueueName(name) {
  if (typeof name !== 'string' || !name) {
    throw configError(`queue must be a non-empty string, got ${typeName(name)} ${JSON.stringify(name)}`);
  }
  if (name.length > MAX_QUEUE_NAME) {
    throw configError(`queue must be at most ${MAX_QUEUE_NAME} characters, got ${name.length}`);
  }
  const bad = BAD_NAME.exec(name);
  if (bad) {
    throw configError(`queue ${JSON.stringify(name)} cannot be a Redis hash tag: it contains ` +
      `${JSON.stringify(bad[0])} (no braces, blanks or control characters)`);
  }
  return name;
}

/** A lane id becomes the end of key names. */
function checkLaneKey(laneId) {
  if (laneId.length > MAX_LANE_ID) {
    throw configError(`laneId ${JSON.stringify(laneId.slice(0, 20))}... is longer than ${MAX_LANE_ID} ` +
      'characters, too long for a Redis key');
  }
  const bad = BAD_LANE.exec(laneId);
  if (bad) {
    throw configError(`laneId ${JSON.stringify(laneId)} cannot be part of a Redis key: it contains the ` +
      `control character ${JSON.stringify(bad[0])}`);
  }
  return laneId;
}

// A Redis Cluster: redis+cluster://host:port (any node; rediss+cluster:// with
// TLS), as pylane/redis/connection.py takes it.
const CLUSTER_SCHEMES = { 'redis+cluster:': 'redis:', 'rediss+cluster:': 'rediss:' };

function isClusterUrl(url) {
  try {
    return Object.hasOwn(CLUSTER_SCHEMES, new URL(url).protocol);
  } catch {
    return false;
  }
}

/** A redis://, rediss://, redis+cluster:// or rediss+cluster:// URL (checked, not resolved). */
function checkUrl(url) {
  if (typeof url !== 'string' || !url) {
    throw configError(`redis must be a Redis URL string like 'redis://host:6379/0', got ${typeName(url)}`);
  }
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw configError(`redis ${JSON.stringify(redact(url))} is not a URL (expected 'redis://host:6379/0')`);
  }
  const cluster = Object.hasOwn(CLUSTER_SCHEMES, parsed.protocol);
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:' && !cluster) {
    throw configError(`redis ${JSON.stringify(redact(url))} must start with redis:// or rediss:// ` +
      '(or redis+cluster:// / rediss+cluster:// for a Redis Cluster)');
  }
  if (!parsed.hostname) throw configError(`redis ${JSON.stringify(redact(url))} names no host`);
  if (parsed.pathname && parsed.pathname !== '/' && !/^\/\d+$/.test(parsed.pathname)) {
    throw configError(`redis ${JSON.stringify(redact(url))}: the path must be a database number, like /0`);
  }
  if (cluster && parsed.pathname && !/^\/0?$/.test(parsed.pathname)) {
    throw configError(`redis ${JSON.stringify(redact(url))}: a Redis Cluster has only database 0`);
  }
  return url;
}

function baseKey(queue) {
  return `a3s:{${checkQueueName(queue)}}`;
}

/** The URL without its password, for messages. */
function redact(url) {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparsable URL>';
  }
}

/** The lane as the Lua library stores and compares it (times in ms). */
function laneConfigJson(lane) {
  // The field names and units of pylane/redis/connection.py lane_config_json:
  // a lane both SDKs declare alike is the same lane to lanes.lua.
  const spec = { id: lane.laneId, priority: lane.priority, min: lane.minConcurrency, max: lane.maxConcurrency };
  if (lane.timeoutMs !== undefined) spec.timeout_ms = lane.timeoutMs;
  if (lane.retry !== undefined && lane.retry.maxRetries > 0) {
    spec.retry = {
      max_retries: lane.retry.maxRetries,
      initial_ms: lane.retry.initialDelayMs,
      max_ms: lane.retry.maxDelayMs,
      multiplier: lane.retry.multiplier,
    };
  }
  if (lane.rateLimit !== undefined && lane.rateLimit.maxCommands > 0) {
    spec.rate = { max: lane.rateLimit.maxCommands, window_ms: lane.rateLimit.windowMs };
  }
  if (lane.priorityBoost !== undefined) {
    spec.boost = { deadline_ms: lane.priorityBoost.deadlineMs, windows: lane.priorityBoost.intervals.map((w) => [w[0], w[1]]) };
  }
  return JSON.stringify(spec);
}

// ---- errors ------------------------------------------------------------------

function isReplyError(error) {
  const redis = redisModule;
  return Boolean(redis && error instanceof redis.ErrorReply);
}

/** Anything but an error reply from the server: the connection's problem. */
function isConnectionError(error) {
  return error instanceof Error && !isReplyError(error) && !(error instanceof LaneError);
}

function unreachable(url, error) {
  const why = error && error.message ? error.message : String(error);
  return new LaneError('ERR_LANE_REDIS_UNREACHABLE', `Redis at ${redact(url)} is unreachable: ${why}`, { cause: error });
}

const ERROR_CODE = /^(A3S_[A-Z_]+) ?([\s\S]*)$/;

function laneErrorOf(text) {
  const match = ERROR_CODE.exec(text);
  if (!match) return new LaneError('ERR_LANE_REDIS', `Redis: ${text}`);
  const [, code, message] = match;
  switch (code) {
    case 'A3S_NO_LANE': {
      const error = new LaneError('ERR_LANE_NOT_FOUND', `Lane not found: ${message}`);
      error.laneId = message;
      return error;
    }
    case 'A3S_CONFLICT':
      return new LaneError('ERR_LANE_CONFIG_CONFLICT', `Lane config conflict: ${message}`);
    case 'A3S_BUDGET':
      return configError(message);
    case 'A3S_DUPLICATE':
    case 'A3S_ARG':
      return new LaneError('ERR_LANE_INVALID_ARGUMENT', message);
    default:
      return new LaneError('ERR_LANE_REDIS', `Redis: ${text}`);
  }
}

// ---- clients -------------------------------------------------------------------

/** A back-off pause that never keeps the process alive by itself. */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

class Backoff {
  constructor() {
    this.delay = 0;
  }

  next() {
    this.delay = this.delay === 0 ? BACKOFF_FIRST_MS : Math.min(this.delay * 2, BACKOFF_MAX_MS);
    return this.delay;
  }

  reset() {
    this.delay = 0;
  }
}

/**
 * A connected client for `url`, or a LaneError naming the URL within
 * `connectTimeoutMs` (connect and a PING: an address that accepts but never
 * answers fails as fast). When its connection drops, its requests fail at
 * once and it closes (`isOpen` false); the user of the client opens a new
 * one with back-off (100 ms doubling to 5 s). No offline queue: nothing is
 * sent twice or late. Its socket is unref'd: a client never keeps the
 * process alive by itself.
 */
async function openClient(url, { connectTimeoutMs = CONNECT_TIMEOUT_MS, name = 'a3s-lane' } = {}) {
  const redis = loadRedis();
  if (isClusterUrl(url)) return openCluster(redis, url, connectTimeoutMs, name);
  let client;
  try {
    client = redis.createClient({
      url,
      name,
      RESP: 2,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: connectTimeoutMs,
        keepAlive: true,
        noDelay: true,
        // No reconnects inside the client: a closed client is replaced by the
        // loop that uses it, with its own back-off (unref'd timers: the
        // client library's would keep the process alive while Redis is away).
        reconnectStrategy: false,
      },
    });
  } catch (error) {
    throw configError(`invalid Redis URL ${JSON.stringify(redact(url))}: ${error.message}`);
  }
  client.on('error', () => {}); // reported where a request fails; the client reconnects itself
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs);
  });
  try {
    await Promise.race([client.connect().then(() => client.sendCommand(['PING'])), timeout]);
  } catch (error) {
    try {
      client.destroy();
    } catch {
      // already closed
    }
    throw unreachable(url, error);
  } finally {
    clearTimeout(timer);
  }
  client.unref();
  return client;
}

// ---- a Redis Cluster -------------------------------------------------------------

// Cluster states in which a command may work a moment later: like a dropped
// connection, the user of the client opens a new one with back-off.
const CLUSTER_STATE = /^(CLUSTERDOWN|TRYAGAIN|MOVED|ASK)\b/;

/**
 * The key a command is routed by: the first key it touches. Every key of a
 * queue carries its hash tag ({queue}), so all of one queue's commands go to
 * the node holding the queue's slot; a FCALL is routed by its first key, the
 * queue's base key.
 */
function routingKey(args) {
  switch (String(args[0]).toUpperCase()) {
    case 'FCALL':
    case 'FCALL_RO':
      return Number(args[2]) > 0 ? args[3] : undefined;
    case 'BLMPOP': // BLMPOP timeout numkeys key ...
      return args[3];
    case 'XREAD': {
      const at = args.findIndex((arg) => String(arg).toUpperCase() === 'STREAMS');
      return at < 0 ? undefined : args[at + 1];
    }
    default:
      return args.length > 1 ? args[1] : undefined;
  }
}

/**
 * node-redis's cluster client behind the interface the single-node client
 * offers here (sendCommand(args, options), isOpen, destroy, unref): each
 * command goes to the node of its first key's slot, following MOVED / ASK.
 * Like a single-node client it closes on a lost connection (or a cluster
 * in flux), and its user opens a new one with back-off; its sockets are
 * unref'd. Each blocking reader opens its own (one connection to the
 * queue's node: minimizeConnections).
 */
class ClusterClient {
  constructor(cluster) {
    this.cluster = cluster;
    this.broken = false;
    this.unrefed = false;
    cluster.on('node-connect', () => {
      if (this.unrefed) this.unrefNodes();
    });
  }

  get isOpen() {
    return !this.broken && this.cluster.isOpen;
  }

  async sendCommand(args, options) {
    try {
      return await this.cluster.sendCommand(routingKey(args), false, args, options);
    } catch (error) {
      if (isReplyError(error) && !CLUSTER_STATE.test(error.message)) throw error;
      this.destroy();
      if (isReplyError(error)) throw new Error(`the cluster is changing: ${error.message}`, { cause: error });
      throw error;
    }
  }

  /** A connected client of every primary (the function library is per node). */
  async primaries() {
    try {
      return await Promise.all(this.cluster.masters.map((node) => this.cluster.nodeClient(node)));
    } catch (error) {
      this.destroy();
      throw error;
    }
  }

  unrefNodes() {
    for (const node of this.cluster.nodeByAddress.values()) {
      if (node.client) node.client.unref();
    }
  }

  unref() {
    this.unrefed = true;
    this.unrefNodes();
  }

  destroy() {
    this.broken = true;
    if (this.cluster.isOpen) this.cluster.destroy();
  }
}

/** The cluster's layout, learnt from the URL's node within `connectTimeoutMs`. */
async function openCluster(redis, url, connectTimeoutMs, name) {
  let cluster;
  let lastError = null;
  try {
    const parsed = new URL(url);
    const socket = { connectTimeout: connectTimeoutMs, keepAlive: true, noDelay: true, reconnectStrategy: false };
    if (parsed.protocol === 'rediss+cluster:') socket.tls = true;
    const defaults = { name, disableOfflineQueue: true, socket };
    if (parsed.username) defaults.username = decodeURIComponent(parsed.username);
    if (parsed.password) defaults.password = decodeURIComponent(parsed.password);
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    cluster = redis.createCluster({
      // socketTimeout on the root node only: the client that learns the
      // layout is the cluster's own, not closed by destroy(); an address that
      // accepts and never answers must not keep it (and the process) alive.
      rootNodes: [{ socket: { host, port: Number(parsed.port || 6379), socketTimeout: connectTimeoutMs } }],
      defaults,
      RESP: 2,
      // Connect to a node when a command needs it: a blocking reader holds
      // one connection (to its queue's node), not one per primary.
      minimizeConnections: true,
    });
  } catch (error) {
    throw configError(`invalid Redis URL ${JSON.stringify(redact(url))}: ${error.message}`);
  }
  cluster.on('error', (error) => {
    lastError = error; // reported where a request fails
  });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs);
  });
  try {
    await Promise.race([cluster.connect(), timeout]);
  } catch (error) {
    try {
      cluster.destroy();
    } catch {
      // already closed
    }
    const why = lastError && lastError !== error && lastError.message
      ? new Error(`${error.message} (${lastError.message})`, { cause: error }) : error;
    throw unreachable(url, why);
  } finally {
    clearTimeout(timer);
  }
  const client = new ClusterClient(cluster);
  client.unref();
  return client;
}

function closeClient(client) {
  if (!client) return;
  try {
    client.destroy();
  } catch {
    // already closed
  }
}

/**
 * Loads the function library if Redis has none, replaces an older
 * compatible one (or another text of the same version: a development
 * build), and refuses any other version. Returns the version. In a
 * cluster, on every primary (functions are per node; a queue's slot may
 * move), as pylane does.
 */
async function ensureLibrary(client, url, source = librarySource()) {
  if (!(client instanceof ClusterClient)) return ensureLibraryOn(client, url, source);
  let nodes;
  try {
    nodes = await client.primaries();
  } catch (error) {
    throw unreachable(url, error);
  }
  let version;
  for (const node of nodes) version = await ensureLibraryOn(node, url, source);
  return version;
}

async function ensureLibraryOn(client, url, source) {
  const [ours, compatibleFrom] = libraryVersions(source);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      let loaded = null;
      const listed = await client.sendCommand(['FUNCTION', 'LIST', 'LIBRARYNAME', LIBRARY_NAME, 'WITHCODE']);
      const entry = (listed || []).map(pairs).find((lib) => lib.library_name === LIBRARY_NAME);
      if (entry) {
        try {
          loaded = Number(await client.sendCommand(['FCALL_RO', 'a3s_version', '0']));
        } catch (error) {
          if (!isReplyError(error)) throw error;
          throw versionError('unknown (no a3s_version function)', ours);
        }
      }
      if (loaded === ours) {
        if (entry.library_code !== source) await client.sendCommand(['FUNCTION', 'LOAD', 'REPLACE', source]);
        return ours;
      }
      if (loaded === null) {
        await client.sendCommand(['FUNCTION', 'LOAD', source]);
      } else if (loaded >= compatibleFrom && loaded < ours) {
        await client.sendCommand(['FUNCTION', 'LOAD', 'REPLACE', source]);
      } else {
        throw versionError(loaded, ours);
      }
      return ours;
    } catch (error) {
      if (error instanceof LaneError) throw error;
      if (isReplyError(error)) {
        if (/already exists/.test(error.message)) continue; // loaded by another process meanwhile
        throw new LaneError('ERR_LANE_REDIS', `Redis at ${redact(url)} refused the a3s_lane functions: ${error.message}`);
      }
      throw unreachable(url, error);
    }
  }
  throw new LaneError('ERR_LANE_REDIS', `could not load the a3s_lane functions into Redis at ${redact(url)}`);
}

function versionError(loaded, ours) {
  const error = new LaneError(
    'ERR_LANE_LIBRARY_VERSION',
    `Redis holds the a3s_lane functions version ${loaded}, this package needs version ${ours} ` +
      '(upgrade the package, or the processes that loaded the newer library)',
  );
  error.loadedVersion = loaded;
  error.version = ours;
  return error;
}

// ['k1', v1, 'k2', v2] -> { k1: v1, k2: v2 }
function pairs(flat) {
  const out = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

/**
 * One method per Lua function, for one queue. `nowMs` (tests only) replaces
 * Redis TIME; production passes nothing ("").
 */
class Functions {
  constructor(client, url, queue) {
    this.client = client;
    this.url = url;
    this.queue = queue;
    this.base = baseKey(queue);
    this._reloading = null;
  }

  key(suffix) {
    return `${this.base}:${suffix}`;
  }

  async call(name, args, nowMs) {
    const now = nowMs === undefined || nowMs === null ? '' : String(nowMs);
    const command = ['FCALL', name, '1', this.base, now, ...args.map(String)];
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.client.sendCommand(command, { timeout: COMMAND_TIMEOUT_MS });
      } catch (error) {
        if (isReplyError(error)) {
          if (attempt === 0 && /Function not found/i.test(error.message)) {
            // Redis lost its functions (a restart without persistence,
            // FUNCTION FLUSH): load them again, once.
            if (this._reloading === null) {
              this._reloading = ensureLibrary(this.client, this.url).finally(() => {
                this._reloading = null;
              });
            }
            await this._reloading;
            continue;
          }
          throw laneErrorOf(error.message);
        }
        throw unreachable(this.url, error);
      }
    }
  }

  async registerLanes(configs, options, nowMs) {
    return Number(await this.call('a3s_register_lanes', [JSON.stringify(options), ...configs], nowMs));
  }

  /**
   * `direct`: the worker reads the records of commands a submit leased to it
   * from its wake list, besides tokens (lanes.lua, wake).
   */
  async join(workerId, slots, types, leaseMs, info = '', nowMs, direct = false) {
    return Number(await this.call('a3s_join',
      [workerId, slots, JSON.stringify([...types].sort()), leaseMs, info, direct ? '1' : '0'], nowMs));
  }

  async leave(workerId, nowMs) {
    return Boolean(Number(await this.call('a3s_leave', [workerId], nowMs)));
  }

  async heartbeat(workerId, leaseMs, nowMs) {
    const [known, reaped] = await this.call('a3s_heartbeat', [workerId, leaseMs], nowMs);
    return { known: Boolean(Number(known)), reaped: Number(reaped) };
  }

  async submit(commandId, laneId, commandType, payloadJson, replyTo = '', nowMs) {
    return String(await this.call('a3s_submit', [commandId, laneId, commandType, payloadJson, replyTo], nowMs));
  }

  /**
   * Queues many commands, all or none: `commands` are [id, laneId, type,
   * payload JSON] each (a3s_submit_many). Returns how many were queued.
   */
  async submitMany(commands, replyTo = '', nowMs) {
    const args = [replyTo];
    for (const command of commands) args.push(command[0], command[1], command[2], command[3]);
    return Number(await this.call('a3s_submit_many', args, nowMs));
  }

  /**
   * Moves up to `most` results of a client to its `:taken` list (emptied
   * first: the caller handled what was there) and returns them.
   */
  async takeResults(clientId, most) {
    return this.call('a3s_take_results', [clientId, most]);
  }

  async claim(workerId, free, acks, nowMs) {
    return parseClaim(await this.call('a3s_claim', [workerId, free, JSON.stringify(acks)], nowMs));
  }

  async cancel(commandId, nowMs) {
    return Boolean(Number(await this.call('a3s_cancel', [commandId], nowMs)));
  }

  async pause(laneId, nowMs) {
    await this.call('a3s_pause', [laneId], nowMs);
  }

  async resume(laneId, nowMs) {
    await this.call('a3s_resume', [laneId], nowMs);
  }

  async stats(nowMs) {
    return parseStats(await this.call('a3s_stats', [], nowMs));
  }

  async deadLetters(start = 0, stop = -1) {
    const raw = await this.call('a3s_dead_letters', [start, stop]);
    return raw.map((item) => JSON.parse(item));
  }
}

// cjson writes an empty Lua table as {}.
function parseClaim(raw) {
  const reply = JSON.parse(raw);
  for (const name of ['claimed', 'rejected']) {
    if (!Array.isArray(reply[name])) reply[name] = [];
  }
  return reply;
}

function parseStats(raw) {
  const reply = JSON.parse(raw);
  for (const name of ['lanes', 'workers']) {
    if (!Array.isArray(reply[name])) reply[name] = [];
  }
  return reply;
}

module.exports = {
  LIBRARY_NAME,
  CONNECT_TIMEOUT_MS,
  COMMAND_TIMEOUT_MS,
  Backoff,
  Functions,
  sleep,
  loadRedis,
  librarySource,
  libraryVersions,
  luaFile,
  checkQueueName,
  checkLaneKey,
  checkUrl,
  isClusterUrl,
  routingKey,
  ClusterClient,
  baseKey,
  redact,
  laneConfigJson,
  isReplyError,
  isConnectionError,
  unreachable,
  laneErrorOf,
  openClient,
  closeClient,
  ensureLibrary,
  parseClaim,
  parseStats,
};
