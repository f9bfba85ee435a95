'use strict';
// A throw-away redis-server for the Redis-mode tests, as tests/redis_server.py
// does it for Python: its own process on a free 127.0.0.1 port, no
// persistence (unless asked), its files in a temporary folder, stopped by
// its PID. Never a system service, never another address. Every wait is
// bounded: PING must answer within START_TIMEOUT_MS.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

// A synchronous submit that would wait longer fails the test instead of hanging it.
process.env.A3S_LANE_SYNC_SUBMIT_LIMIT_MS = process.env.A3S_LANE_SYNC_SUBMIT_LIMIT_MS || '20000';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5000;
const HOST = '127.0.0.1';

function redisServerBinary() {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() ? found.stdout.trim() : null;
}

/** Why Redis-mode tests are skipped here, or false when they can run. */
function skipReason() {
  if (redisServerBinary() === null) return 'redis-server is not installed (bash tests/run_all.sh installs it)';
  try {
    require.resolve('redis');
  } catch {
    return 'the redis package is not installed (npm install in node/)';
  }
  return false;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function ping(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

class RedisServer {
  constructor(extraArgs = [], { pickPort = freePort } = {}) {
    this.binary = redisServerBinary();
    if (!this.binary) throw new Error('redis-server is not installed');
    this.extraArgs = extraArgs;
    this.pickPort = pickPort;
    this.port = 0;
    this.process = null;
    this.dir = '';
  }

  get url() {
    return `redis://${HOST}:${this.port}/0`;
  }

  get pid() {
    return this.process && this.process.pid;
  }

  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'a3s-lane-node-redis-'));
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await this.pickPort();
      if (await this.launch()) return this;
      await this.stop(false);
    }
    throw new Error(`redis-server did not answer PING on ${HOST}:${this.port} within ${START_TIMEOUT_MS} ms`);
  }

  async launch() {
    this.process = spawn(this.binary, [
      '--port', String(this.port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', this.dir,
      '--logfile', path.join(this.dir, 'redis.log'), '--daemonize', 'no', ...this.extraArgs,
    ], { stdio: 'ignore' });
    const exited = new Promise((resolve) => this.process.once('exit', () => resolve(true)));
    this.exited = exited;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (await ping(this.port)) return true;
      const gone = await Promise.race([exited, new Promise((r) => setTimeout(() => r(false), 20))]);
      if (gone) return false;
    }
    return false;
  }

  /** After kill(): the same port and folder (its AOF, if any). */
  async restart() {
    if (!(await this.launch())) throw new Error(`redis-server did not restart on port ${this.port}`);
  }

  /** SIGKILL (a crash), keeping the folder. */
  async kill() {
    if (this.process && this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGKILL');
      await this.exited;
    }
  }

  /** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; by this server's PID only. */
  async stop(removeDir = true) {
    const child = this.process;
    this.process = null;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    if (removeDir && this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- a Redis Cluster ------------------------------------------------------------

const CLUSTER_TIMEOUT_MS = 30_000;

function redisCliBinary() {
  const found = spawnSync('sh', ['-c', 'command -v redis-cli'], { encoding: 'utf8' });
  return found.status === 0 && found.stdout.trim() ? found.stdout.trim() : null;
}

/** Why Redis Cluster tests are skipped here, or false when they can run. */
function clusterSkipReason() {
  return skipReason() || (redisCliBinary() === null ? 'redis-cli is not installed (it makes the cluster)' : false);
}

function canBind(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/**
 * A free port whose cluster bus port (+10000) is free too: from 20000 to
 * 29999, below the kernel's ephemeral range (as tests/redis_server.py).
 */
async function freeClusterPort() {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    if ((await canBind(port)) && (await canBind(port + 10000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

/** CLUSTER INFO says cluster_state:ok (within 1 s, else false). */
function clusterOk(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let text = '';
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('CLUSTER INFO\r\n'));
    socket.on('data', (data) => {
      text += data.toString();
      if (/cluster_state:\w+/.test(text)) done(text.includes('cluster_state:ok'));
    });
  });
}

/**
 * A Redis Cluster of `size` primaries (no replicas) on loopback, each a
 * RedisServer of its own, joined with `redis-cli --cluster create` and
 * stopped by PID, as tests/redis_server.py RedisClusterServers. Every wait
 * is bounded: CLUSTER_TIMEOUT_MS for every node to say cluster_state:ok.
 */
class RedisCluster {
  constructor(size = 3) {
    this.nodes = Array.from({ length: size }, () => new RedisServer(
      ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'],
      { pickPort: freeClusterPort }));
  }

  get url() {
    return `redis+cluster://${HOST}:${this.nodes[0].port}`;
  }

  async start() {
    const cli = redisCliBinary();
    if (!cli) throw new Error('redis-cli is not installed');
    try {
      for (const node of this.nodes) await node.start();
      const created = spawnSync(cli, ['--cluster', 'create', ...this.nodes.map((n) => `${HOST}:${n.port}`),
        '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: CLUSTER_TIMEOUT_MS });
      if (created.status !== 0) {
        throw new Error(`redis-cli --cluster create failed (${created.status}):\n${created.stdout}${created.stderr}`);
      }
      const deadline = Date.now() + CLUSTER_TIMEOUT_MS;
      for (;;) {
        const states = await Promise.all(this.nodes.map((n) => clusterOk(n.port)));
        if (states.every(Boolean)) break;
        if (Date.now() > deadline) throw new Error(`the cluster did not reach cluster_state:ok within ${CLUSTER_TIMEOUT_MS} ms`);
        // The nodes agree on the slots over their bus: poll, bounded above.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
    return this;
  }

  async stop() {
    for (const node of this.nodes) await node.stop();
  }
}

let queueCounter = 0;

/** A queue name no other test uses. */
function uniqueQueue(name) {
  return `n-${name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-${process.pid}-${++queueCounter}`;
}

module.exports = { RedisServer, RedisCluster, skipReason, clusterSkipReason, uniqueQueue, freePort };
