'use strict';
// The worker thread behind the synchronous calls of a Redis-mode Lane
// (start, the seed's submit, stats, cancel, pause, resume): the main thread
// posts a request and waits with Atomics.wait; this thread does the Redis
// round trips on its own event loop and its own connections, posts the
// reply and wakes it. It never runs JS handlers: a synchronous submit comes
// here only when no JS code of the calling process can be involved in the
// command (lib/redis/bridge.js decides that).

const { parentPort, workerData } = require('node:worker_threads');
const { randomUUID } = require('node:crypto');
const {
  Functions, openClient, closeClient, ensureLibrary, isReplyError, unreachable,
} = require('./connection');
const { LaneError } = require('../errors');

const flag = new Int32Array(workerData.flag);
const replies = workerData.port;
const clients = new Map(); // url -> Promise<client>
const readyLibrary = new Map(); // url -> Promise<version>
// Results of synchronous submits come to a list of this thread's own, so the
// main thread's results reader (stopped while it waits) never takes them.
const replyId = `${randomUUID().replace(/-/g, '')}`;

function reply(message) {
  replies.postMessage(message);
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

function serialise(error) {
  if (error instanceof LaneError) {
    return { code: error.code, message: error.message, laneId: error.laneId };
  }
  return { code: 'ERR_LANE_REDIS', message: error && error.message ? error.message : String(error) };
}

async function client(url) {
  let pending = clients.get(url);
  if (pending === undefined) {
    pending = openClient(url);
    clients.set(url, pending);
    pending.catch(() => clients.delete(url));
  }
  const c = await pending;
  if (!c.isOpen) {
    clients.delete(url);
    closeClient(c);
    return client(url);
  }
  return c;
}

async function functions(url, queue) {
  const c = await client(url);
  let loaded = readyLibrary.get(url);
  if (loaded === undefined) {
    loaded = ensureLibrary(c, url);
    readyLibrary.set(url, loaded);
    loaded.catch(() => readyLibrary.delete(url));
  }
  await loaded;
  return new Functions(c, url, queue);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- the synchronous submit ------------------------------------------------------

/**
 * Submits and waits for the result. `proxies` are this process's own
 * workers on the queue (echo-only: no JS handler, nothing running): while
 * the main thread waits, their slots cannot claim, so this thread claims
 * for them, echoes what they get (a type nobody handles is echoed) and
 * acknowledges it, and keeps their leases alive. Without proxies it only
 * waits for the result (BLPOP, no polling).
 */
async function submitSync(fns, request) {
  const { id, laneId, commandType, payloadJson, proxies } = request;
  // Each of this process's workers renews its lease every lease / 3.
  const beatEvery = Math.min(...proxies.map((p) => p.leaseMs / 3));
  await fns.submit(id, laneId, commandType, payloadJson, replyId);
  const resultsKey = fns.key(`results:${replyId}`);
  const blocking = await openClient(fns.url);
  const acks = new Map(proxies.map((p) => [p.workerId, []]));
  const onBehalf = Object.fromEntries(proxies.map((p) => [p.workerId, []]));
  let lastBeat = Date.now();
  let delay = 0;
  try {
    for (;;) {
      for (const proxy of proxies) {
        await claimFor(fns, proxy, acks.get(proxy.workerId));
        await ackInFlight(fns, proxy, acks.get(proxy.workerId), onBehalf[proxy.workerId]);
      }
      if (proxies.length && Date.now() - lastBeat >= beatEvery) {
        lastBeat = Date.now();
        for (const proxy of proxies) await fns.heartbeat(proxy.workerId, proxy.leaseMs);
      }
      // With proxies: short waits between claims (only while the main thread
      // is blocked); without: block until the result comes.
      delay = proxies.length ? Math.min(Math.max(2, delay * 2), 100) : 0;
      let item;
      try {
        item = await blocking.sendCommand(['BLPOP', resultsKey, String(delay / 1000)]);
      } catch (error) {
        if (isReplyError(error)) throw error;
        throw unreachable(fns.url, error);
      }
      if (item) {
        const message = JSON.parse(item[1]);
        if (message.id === id) {
          // Acks still owed go out now (each proxy's next claim, asking for nothing).
          for (const proxy of proxies) {
            const owed = acks.get(proxy.workerId);
            if (owed.length) await fns.claim(proxy.workerId, 0, owed.splice(0));
          }
          return { message, onBehalf };
        }
      }
    }
  } finally {
    closeClient(blocking);
  }
}

// Claims for one of the process's own workers until nothing more comes,
// echoing each command (its acks go in the next claim, as a worker's do).
async function claimFor(fns, proxy, acks) {
  for (let round = 0; round < 1000; round++) {
    const reply = await fns.claim(proxy.workerId, proxy.slots, acks.splice(0));
    if (!reply.known) {
      await fns.join(proxy.workerId, proxy.slots, proxy.types, proxy.leaseMs, proxy.info, undefined,
        true);
      continue;
    }
    if (reply.claimed.length === 0) return;
    for (const command of reply.claimed) {
      acks.push({ id: command.id, lease: command.lease, status: 'ok', result: command.payload });
    }
  }
}

// A claim the main thread sent before it blocked may still hand one of its
// workers a command (its reply waits, unread, in the main thread's socket):
// whatever is leased to a worker that runs nothing is that. Echoed and
// acknowledged here on its behalf (with the lease Redis gave it); the main
// thread skips these ids when it reads that reply.
async function ackInFlight(fns, proxy, acks, onBehalf) {
  const leased = await fns.client.sendCommand(['SMEMBERS', fns.key(`leased:${proxy.workerId}`)]);
  for (const raw of leased) {
    const id = String(raw);
    if (onBehalf.includes(id)) continue;
    const [lease, payload] = await fns.client.sendCommand(['HMGET', fns.key(`cmd:${id}`), 'lease', 'payload']);
    if (lease === null || lease === undefined) continue;
    onBehalf.push(id);
    acks.push({ id, lease: String(lease), status: 'ok', result: payload === null ? 'null' : String(payload) });
  }
  if (acks.length) {
    const reply = await fns.claim(proxy.workerId, 0, acks.splice(0));
    if (reply.rejected.length) {
      for (const id of reply.rejected) onBehalf.splice(onBehalf.indexOf(String(id)), 1);
    }
  }
}

// ---- requests ----------------------------------------------------------------------

async function handle(request) {
  const { op, url, queue } = request;
  switch (op) {
    case 'start': {
      const fns = await functions(url, queue);
      await fns.registerLanes(request.lanes, request.options);
      if (request.worker) {
        const w = request.worker;
        // As the worker joins itself (lib/redis/worker.js): "direct".
        await fns.join(w.workerId, w.slots, w.types, w.leaseMs, w.info, undefined, true);
      }
      return null;
    }
    case 'submit':
      return submitSync(await functions(url, queue), request);
    case 'stats':
      return (await functions(url, queue)).stats();
    case 'cancel':
      return (await functions(url, queue)).cancel(request.id);
    case 'pause':
      return (await functions(url, queue)).pause(request.laneId);
    case 'resume':
      return (await functions(url, queue)).resume(request.laneId);
    case 'lastEventId': {
      const fns = await functions(url, queue);
      const last = await fns.client.sendCommand(['XREVRANGE', fns.key('events'), '+', '-', 'COUNT', '1']);
      return last && last.length ? String(last[0][0]) : '0-0';
    }
    case 'sleep': // tests: a request that takes a while
      await sleep(request.ms);
      return null;
    default:
      throw new LaneError('ERR_LANE_REDIS', `unknown bridge request ${op}`);
  }
}

// One request at a time: the main thread waits for each reply.
parentPort.on('message', (request) => {
  handle(request).then(
    (value) => reply({ seq: request.seq, ok: true, value: value === undefined ? null : value }),
    (error) => reply({ seq: request.seq, ok: false, error: serialise(error) }),
  );
});

process.on('uncaughtException', (error) => {
  reply({ seq: -1, ok: false, error: serialise(error) });
});
