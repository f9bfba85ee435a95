'use strict';
// What the Node worker processes of bench/bench_redis.py share
// (bullmq_worker.js, ours_node_worker.js): the job body's bookkeeping, as
// jobs.py's Recorder. The body counts itself done and keeps its start
// records; every FLUSH_EVERY_MS they go to Redis in one pipeline, through
// `write(records, count)` (each process's own client), so that nothing in
// a job body talks to Redis and every system pays the same for it.

const FLUSH_EVERY_MS = 2;

/** Counts done jobs and keeps "tag start_ns end_ns" records; flushes them with `write`. */
function recorder(write) {
  let done = 0;
  let records = [];
  let flushing = false;
  setInterval(async () => {
    if (flushing || (!done && records.length === 0)) return;
    const count = done;
    const batch = records;
    done = 0;
    records = [];
    flushing = true;
    try {
      await write(batch, count);
    } catch (error) {
      // the driver is flushing or stopping Redis: the round is over
    } finally {
      flushing = false;
    }
  }, FLUSH_EVERY_MS);
  return {
    done() {
      done += 1;
    },
    /** Sleeps `payload.s` ms, then keeps the record of a job that started at `start`. */
    async record(start, payload) {
      if (payload.s) await sleep(payload.s);
      records.push(`${payload.g} ${start} ${process.hrtime.bigint()}`);
      done += 1;
      return null;
    },
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { recorder };
