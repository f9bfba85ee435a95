'use strict';
// The floors for bench_node.js: the least a promise-returning concurrency
// limiter can cost on the same work, written by hand for this one job.
// Nothing else: no events, no ids, no cancellation, no error types, no
// checks of their arguments.
//
//   RingLimiter — no priorities: a JS array used as a FIFO ring (three slots
//     per job: the function and its promise's resolve and reject) and a
//     counter of running jobs.
//   BucketLimiter — a few fixed priorities: one such ring per priority, the
//     first non-empty ring goes next, and the same counter.
//   HeapLimiter — any priorities: a binary min-heap of {priority, seq} (seq
//     keeps FIFO among equal priorities) and the same counter. Not in the
//     tables: with 6 priorities the rings cost less.
//
// Both start a job at once when a slot is free, else queue it; a finished job
// starts the next one in the same callback. Every job returns a promise.

class RingLimiter {
  constructor(concurrency) {
    this.concurrency = concurrency;
    this.running = 0;
    this.queue = [];
    this.head = 0;
  }

  add(fn) {
    return new Promise((resolve, reject) => {
      if (this.running < this.concurrency) {
        this.running++;
        this._run(fn, resolve, reject);
      } else {
        this.queue.push(fn, resolve, reject);
      }
    });
  }

  _run(fn, resolve, reject) {
    let result;
    try {
      result = fn();
    } catch (error) {
      reject(error);
      this._next();
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        resolve(value);
        this._next();
      },
      (error) => {
        reject(error);
        this._next();
      },
    );
  }

  _next() {
    this.running--;
    const queue = this.queue;
    const head = this.head;
    if (head === queue.length) return;
    const fn = queue[head];
    const resolve = queue[head + 1];
    const reject = queue[head + 2];
    queue[head] = queue[head + 1] = queue[head + 2] = undefined;
    this.head = head + 3;
    if (this.head === queue.length) {
      queue.length = 0;
      this.head = 0;
    }
    this.running++;
    this._run(fn, resolve, reject);
  }
}

class HeapLimiter extends RingLimiter {
  constructor(concurrency) {
    super(concurrency);
    this.heap = [];
    this.seq = 0;
  }

  // Lower number first, as in a3s-lane's lanes.
  add(fn, priority) {
    return new Promise((resolve, reject) => {
      if (this.running < this.concurrency) {
        this.running++;
        this._run(fn, resolve, reject);
      } else {
        this._push({ priority, seq: this.seq++, fn, resolve, reject });
      }
    });
  }

  _push(item) {
    const heap = this.heap;
    let i = heap.length;
    heap.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = item;
  }

  _pop() {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    const n = heap.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && before(heap[child + 1], heap[child])) child++;
        if (!before(heap[child], last)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }

  _next() {
    this.running--;
    if (this.heap.length === 0) return;
    const item = this._pop();
    this.running++;
    this._run(item.fn, item.resolve, item.reject);
  }
}

// A fixed set of priorities 0..levels-1 (lower first): one FIFO ring per
// priority, the first non-empty one goes next. Cheaper than a heap when the
// priorities are few and known in advance.
class BucketLimiter extends RingLimiter {
  constructor(concurrency, levels) {
    super(concurrency);
    this.rings = Array.from({ length: levels }, () => ({ queue: [], head: 0 }));
    this.waiting = 0;
  }

  add(fn, priority) {
    return new Promise((resolve, reject) => {
      if (this.running < this.concurrency) {
        this.running++;
        this._run(fn, resolve, reject);
      } else {
        this.rings[priority].queue.push(fn, resolve, reject);
        this.waiting++;
      }
    });
  }

  _next() {
    this.running--;
    if (this.waiting === 0) return;
    let ring;
    for (ring of this.rings) if (ring.head < ring.queue.length) break;
    const { queue, head } = ring;
    const fn = queue[head];
    const resolve = queue[head + 1];
    const reject = queue[head + 2];
    queue[head] = queue[head + 1] = queue[head + 2] = undefined;
    ring.head = head + 3;
    if (ring.head === queue.length) {
      queue.length = 0;
      ring.head = 0;
    }
    this.waiting--;
    this.running++;
    this._run(fn, resolve, reject);
  }
}

function before(a, b) {
  return a.priority < b.priority || (a.priority === b.priority && a.seq < b.seq);
}

module.exports = { RingLimiter, HeapLimiter, BucketLimiter };
