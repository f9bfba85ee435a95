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
  constructor(extraArgs = []) {
    this.binary = redisServerBinary();
    if (!this.binary) throw new Error('redis-server is not installed');
    this.extraArgs = extraArgs;
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
      this.port = await freePort();
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

let queueCounter = 0;

/** A queue name no other test uses. */
function uniqueQueue(name) {
  return `n-${name.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-${process.pid}-${++queueCounter}`;
}

module.exports = { RedisServer, skipReason, uniqueQueue, freePort };
