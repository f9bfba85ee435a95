// Type definitions for @a3s-lab/lane.

/** One lane: a priority (lower is more urgent) and a concurrency window. */
export interface LaneConfig {
  laneId: string;
  /** Integer >= 0; lower numbers are dispatched first. Default 0. */
  priority?: number;
  /** Workers reserved for this lane: it can always run this many at once. Default 1. */
  minConcurrency?: number;
  /** Never more than this many of the lane's commands run at once (>= 1). Default 10. */
  maxConcurrency?: number;
  /** Redis mode only: a command running longer fails with ERR_LANE_COMMAND_TIMEOUT (ms, > 0). */
  timeoutMs?: number;
  /** Redis mode only: retries with back-off, then a dead letter. */
  retry?: RetryOptions;
  /** Redis mode only: a token bucket, `maxCommands` per `windowMs` (0: unlimited). */
  rateLimit?: { maxCommands: number; windowMs: number };
  /**
   * Redis mode only: a front command's lane gets more urgent as its deadline
   * nears: `boost` off the priority within `beforeDeadlineMs` of it; past it, the most urgent.
   */
  priorityBoost?: { deadlineMs: number; intervals?: Array<[beforeDeadlineMs: number, boost: number]> };
}

/** Redis mode: a lane's retry policy (the Python package's RetryPolicy, in ms). */
export interface RetryOptions {
  maxRetries: number;
  /** Default 0. */
  initialDelayMs?: number;
  /** Default initialDelayMs. */
  maxDelayMs?: number;
  /** >= 1; default 1. */
  multiplier?: number;
}

export interface LaneOptions {
  /** Lane configs; the six default lanes when absent. */
  lanes?: LaneConfig[];
  /**
   * The global concurrency limit (the engine's worker budget). It must cover
   * the sum of minConcurrency. Default: the sum of maxConcurrency, capped at
   * 64 (never below the reservations).
   */
  maxWorkers?: number;
  /** Events waiting for delivery before the oldest are dropped. Default 65536. */
  eventCapacity?: number;
  /**
   * Redis mode: a `redis://` or `rediss://` URL (`redis://host:6379/0`), or
   * `redis+cluster://host:port` / `rediss+cluster://host:port` (any node) for a
   * Redis Cluster: each queue lives in one slot (its keys share the hash tag
   * `{<queue>}`), and the functions are loaded on every primary. The
   * queue then lives in Redis and is shared by every process, Node or
   * Python, naming the same URL and queue; the lane rules run inside Redis
   * (the a3s_lane function library). Needs the optional peer dependency
   * `redis` (`npm install redis`). `maxWorkers` is this process's worker
   * slots there.
   */
  redis?: string;
  /** Redis mode: the queue's name (its keys are `a3s:{<queue>}:*`). Default `'default'`. */
  queue?: string;
  /**
   * Redis mode: a worker's lease in ms (>= 300; default 10000). It renews it
   * every lease / 3; a worker silent for a whole lease is reaped and its
   * commands go back to the front of their lanes for another worker.
   */
  leaseMs?: number;
}

/** Redis mode: options of `start()`. */
export interface StartOptions {
  /** Join as a worker (default) or, with `false`, as a producer only. */
  worker?: boolean;
  /**
   * Keep the process running while this Lane is a worker (until close() or
   * drain() after shutdown()). Default false: like subscriptions, an idle
   * Redis connection never keeps the process alive by itself.
   */
  keepAlive?: boolean;
}

/** Keys of the events a queue emits. */
export type EventKey =
  | 'queue.command.submitted'
  | 'queue.command.started'
  | 'queue.command.completed'
  | 'queue.command.failed'
  | 'queue.command.cancelled'
  | 'queue.shutdown.started'
  | 'queue.shutdown.complete'
  // Redis mode: from the queue's event stream (every process), or local.
  | 'queue.command.retry'
  | 'queue.command.timeout'
  | 'queue.command.dead_lettered'
  | 'queue.command.requeued'
  | 'queue.worker.joined'
  | 'queue.worker.left'
  | 'queue.worker.lost'
  | 'queue.redis.disconnected'
  | 'queue.redis.reconnected';

export interface LaneEvent {
  readonly key: EventKey | string;
  /**
   * The payload as a JSON string: `{"lane_id", "command_id", "command_type"}`
   * for submitted and started, `{"lane_id", "command_id"}` for completed and
   * cancelled, `{"lane_id", "command_id", "error"}` for failed, `"null"` for
   * the shutdown events.
   */
  readonly payload: string;
  /** RFC 3339, UTC, nanoseconds: `2026-11-24T09:51:05.522257781+00:00`. */
  readonly timestamp: string;
}

/** Parsed `LaneEvent.payload` of the command events. */
export interface CommandEventPayload {
  lane_id: string;
  command_id: string;
  command_type?: string;
  error?: string;
  /** Redis mode: the worker that started the command (`host:pid:id`). */
  worker_id?: string;
}

/** `err` is always null; it is there for the original SDK's signature. */
export type EventCallback = (err: null | Error, event: LaneEvent) => void;

export interface Subscription {
  /** Stops further deliveries to this callback. */
  unsubscribe(): void;
  /** Same as unsubscribe(). */
  close(): void;
  readonly closed: boolean;
  /** How many times the callback threw (each was reported with process.emitWarning). */
  readonly callbackErrors: number;
}

export interface LaneStatus {
  laneId: string;
  priority: number;
  pending: number;
  active: number;
  minConcurrency: number;
  maxConcurrency: number;
  paused: boolean;
  submitted: number;
  dispatched: number;
  completed: number;
  failed: number;
  cancelled: number;
}

export interface QueueStats {
  totalPending: number;
  totalActive: number;
  /** In declaration order. */
  lanes: LaneStatus[];
}

/** Redis mode: a lane's status, queue-wide. */
export interface RedisLaneStatus extends LaneStatus {
  /** Waiting out a retry's back-off. */
  delayed: number;
  retried: number;
  timedOut: number;
  deadLettered: number;
  /** Given back by a worker that was lost (its lease expired). */
  requeued: number;
  throttled: boolean;
  /** Why pending commands do not start now ('' when they can). */
  waiting: string;
}

/** Redis mode: a live worker (any process, Node or Python). */
export interface WorkerStatus {
  workerId: string;
  slots: number;
  /** Commands it holds now. */
  active: number;
  /** Command types it has handlers for. */
  types: string[];
  leaseLeftMs: number;
  beatAgeMs: number;
  /** `<host> pid <pid>`. */
  info: string;
}

/** Redis mode: `stats()` of the whole queue, every lane registered by any process. */
export interface RedisQueueStats extends QueueStats {
  lanes: RedisLaneStatus[];
  totalDelayed: number;
  deadLetterCount: number;
  /** The live workers' slots. */
  slots: number;
  /** Acks refused because the lease had moved (the command ran again elsewhere). */
  lateAcks: number;
  /** The a3s_lane library version in Redis. */
  version: number;
  workers: WorkerStatus[];
}

/** Redis mode: a command that failed for good. */
export interface DeadLetter {
  commandId: string;
  commandType: string;
  laneId: string;
  error: string;
  attempts: number;
  /** ISO 8601. */
  failedAt: string;
  /** The payload as JSON text. */
  payload: string;
}

/** What a handler (or an `add()` function) gets about its command. */
export interface CommandContext {
  readonly laneId: string;
  readonly commandType: string;
  readonly commandId: string;
  /** The signal passed to submitAsync/run/add, if any. */
  readonly signal: AbortSignal | undefined;
}

/** A handler may return a value or a Promise of one. */
export type Handler<P = any, R = unknown> = (payload: P, context: CommandContext) => R | PromiseLike<R>;

export interface SubmitOptions {
  /** Aborting it cancels the command while it waits (ERR_LANE_CANCELLED). */
  signal?: AbortSignal;
}

export interface AddOptions extends SubmitOptions {
  /** The command type shown in events; default: the function's name. */
  commandType?: string;
}

/** `runMany`'s options. */
export interface RunManyOptions extends SubmitOptions {
  /**
   * `false`: fire and forget (as the Python SDK's `submit_many(results=False)`).
   * `runMany` resolves with the command ids instead of promises, nothing is
   * tracked, and in Redis mode no result is sent back to this process. The
   * `signal` then only guards the queueing (cancel queued commands by id).
   * Default `true`.
   */
  results?: boolean;
}

/** One command of `runMany`: `[commandType, payload]` or `{ commandType, payload }`. */
export type ManyCommand =
  | readonly [commandType: string, payload?: unknown]
  | { readonly commandType: string; readonly payload?: unknown };

/** The promise of a queued command; `commandId` is the id its events carry. */
export interface CommandPromise<T> extends Promise<T> {
  readonly commandId: string;
}

export type LaneErrorCode =
  | 'ERR_LANE_NOT_FOUND'
  | 'ERR_LANE_SHUTTING_DOWN'
  | 'ERR_LANE_NOT_STARTED'
  | 'ERR_LANE_INVALID_CONFIG'
  | 'ERR_LANE_INVALID_PAYLOAD'
  | 'ERR_LANE_INVALID_RESULT'
  | 'ERR_LANE_WOULD_BLOCK'
  | 'ERR_LANE_CANCELLED'
  | 'ERR_LANE_TIMEOUT'
  | 'ERR_LANE_INVALID_ARGUMENT'
  | 'ERR_LANE_ENGINE'
  // Redis mode
  | 'ERR_LANE_REDIS'
  | 'ERR_LANE_REDIS_UNREACHABLE'
  | 'ERR_LANE_REDIS_CLIENT_MISSING'
  | 'ERR_LANE_LIBRARY_VERSION'
  | 'ERR_LANE_CONFIG_CONFLICT'
  | 'ERR_LANE_COMMAND_FAILED'
  | 'ERR_LANE_COMMAND_TIMEOUT';

export class LaneError extends Error {
  readonly code: LaneErrorCode;
  /** Set for ERR_LANE_NOT_FOUND. */
  readonly laneId?: string;
  /** Redis mode, ERR_LANE_COMMAND_FAILED / ERR_LANE_COMMAND_TIMEOUT: the command. */
  readonly commandId?: string;
}

export class Lane {
  /** The six default lanes, or `options.lanes`. */
  constructor(options?: LaneOptions);
  /** A queue with these lanes instead of the defaults. */
  static withLanes(configs: LaneConfig[], options?: Omit<LaneOptions, 'lanes'>): Lane;

  /** Runs `handler(payload, context)` for commands of this type; returns the queue. */
  registerHandler<P = any, R = unknown>(commandType: string, handler: Handler<P, R>): this;
  unregisterHandler(commandType: string): boolean;

  /**
   * Starts dispatching; commands queued before start() run from now on.
   * Redis mode: joins the queue (as a worker, or `{ worker: false }` as a
   * producer only) before it returns; an unreachable Redis throws
   * ERR_LANE_REDIS_UNREACHABLE within 3 s.
   */
  start(options?: StartOptions): void;
  /** Redis mode: the URL (password hidden) and queue; null in process. */
  readonly redis: { url: string; queue: string } | null;
  /** Redis mode: this process's worker id in the queue; null otherwise. */
  readonly workerId: string | null;
  readonly isStarted: boolean;
  readonly isShuttingDown: boolean;
  readonly maxWorkers: number;
  readonly laneIds: string[];
  readonly droppedEvents: number;

  /**
   * Synchronous submit: runs the command at once and returns its result as
   * JSON. Throws ERR_LANE_WOULD_BLOCK when the command cannot start at once
   * or its handler is async — use submitAsync() then.
   */
  submit(laneId: string, commandType: string, payloadJson?: string | null): string;
  /** Queues a command; resolves with its result as a JSON string. */
  submitAsync(
    laneId: string,
    commandType: string,
    payloadJson?: string | null,
    options?: SubmitOptions,
  ): CommandPromise<string>;
  /** Queues a command; resolves with its handler's result (the payload, copied, without one). */
  run<R = unknown>(laneId: string, commandType: string, payload?: unknown, options?: SubmitOptions): CommandPromise<R>;
  /** Queues a function as a command. */
  add<R>(laneId: string, fn: (context: CommandContext) => R | PromiseLike<R>, options?: AddOptions): CommandPromise<R>;
  /**
   * Queues many commands in one lane, in their order (a bulk `run`).
   * Resolves, once every command is queued, with one promise per command of
   * its result. Redis mode: one round trip per 500 commands, each 500 queued
   * whole or not at all (on a failure the promise rejects; `error.queued`
   * holds the promises of the batches queued before it). In process: one
   * submit each, after every command was checked (all or none).
   */
  runMany<R = unknown>(
    laneId: string,
    commands: ReadonlyArray<ManyCommand>,
    options?: SubmitOptions & { results?: true },
  ): Promise<Array<CommandPromise<R>>>;
  /**
   * Fire and forget (`{ results: false }`): resolves, once every command is
   * queued (all or none per 500 as above; `error.queued` then holds the ids
   * of the batches queued before the failure), with the command ids (what
   * `cancel()` takes). Nothing is tracked; in Redis mode no result comes
   * back (reply-to ""); in process the outcomes are dropped. The signal
   * only guards the queueing: aborted before a batch is sent, the promise
   * rejects with ERR_LANE_CANCELLED and that batch and the rest are not
   * queued; after the promise resolved it does nothing.
   */
  runMany(
    laneId: string,
    commands: ReadonlyArray<ManyCommand>,
    options: SubmitOptions & { results: false },
  ): Promise<string[]>;
  runMany<R = unknown>(
    laneId: string,
    commands: ReadonlyArray<ManyCommand>,
    options?: RunManyOptions,
  ): Promise<Array<CommandPromise<R>> | string[]>;

  /** Cancels a command that has not started; false if it started or is unknown. */
  cancel(commandId: string): boolean;
  pauseLane(laneId: string): void;
  resumeLane(laneId: string): void;

  subscribe(callback: EventCallback): Subscription;
  subscribeFiltered(keys: string[], callback: EventCallback): Subscription;

  /** In process: a snapshot. Redis mode: the whole queue (a RedisQueueStats; one round trip). */
  stats(): QueueStats;
  /** stats() without blocking the event loop. */
  statsAsync(): Promise<QueueStats>;
  /** Redis mode: the queue's dead letters, oldest first; in process: []. */
  deadLetters(): Promise<DeadLetter[]>;
  /**
   * Stops at once. Redis mode: this process leaves (its worker's unfinished
   * commands go back to their lanes for another worker; its pending
   * promises and drain() calls reject with ERR_LANE_SHUTTING_DOWN, and none
   * of its connections or timers keeps the process alive afterwards).
   * In process: shutdown() and drain().
   */
  close(): Promise<void>;
  /** Stops intake; queued commands still run. */
  shutdown(): void;
  /**
   * Resolves when nothing is pending or running (rejects with ERR_LANE_TIMEOUT
   * after `timeoutMs`); after shutdown() it then ends the subscriptions.
   * `timeoutMs` is a non-negative number of milliseconds, any size (beyond
   * setTimeout's 2^31 - 1 ms the wait is chained); undefined, null or
   * Infinity mean no limit. Anything else rejects with ERR_LANE_INVALID_ARGUMENT.
   */
  drain(timeoutMs?: number): Promise<void>;
}

export const EVENTS: {
  readonly COMMAND_SUBMITTED: 'queue.command.submitted';
  readonly COMMAND_STARTED: 'queue.command.started';
  readonly COMMAND_COMPLETED: 'queue.command.completed';
  readonly COMMAND_FAILED: 'queue.command.failed';
  readonly COMMAND_CANCELLED: 'queue.command.cancelled';
  readonly SHUTDOWN_STARTED: 'queue.shutdown.started';
  readonly SHUTDOWN_COMPLETE: 'queue.shutdown.complete';
  readonly COMMAND_RETRY: 'queue.command.retry';
  readonly COMMAND_TIMEOUT: 'queue.command.timeout';
  readonly COMMAND_DEAD_LETTERED: 'queue.command.dead_lettered';
  readonly COMMAND_REQUEUED: 'queue.command.requeued';
  readonly WORKER_JOINED: 'queue.worker.joined';
  readonly WORKER_LEFT: 'queue.worker.left';
  readonly WORKER_LOST: 'queue.worker.lost';
  readonly REDIS_DISCONNECTED: 'queue.redis.disconnected';
  readonly REDIS_RECONNECTED: 'queue.redis.reconnected';
};

export const DEFAULT_LANES: ReadonlyArray<
  Readonly<Required<Pick<LaneConfig, 'laneId' | 'priority' | 'minConcurrency' | 'maxConcurrency'>>>
>;
