'use strict';
// BullMQ's side of bench/bench_redis.py: the queue name, the connection
// options from the URL, and what a level means (BullMQ priority level + 1:
// 1 is the most urgent prioritized job; 0 would mean "no priority").
const QUEUE = 'bench';

function connectionOf(url) {
  const parsed = new URL(url);
  const db = parsed.pathname && parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  return { host: parsed.hostname, port: Number(parsed.port || 6379), db };
}

function priorityOf(level) {
  return level + 1;
}

module.exports = { QUEUE, connectionOf, priorityOf };
