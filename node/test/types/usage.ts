// Type-checked (never run) by types.test.js: every public member, as a
// TypeScript user would write it.
import {
  Lane, LaneError, EVENTS, DEFAULT_LANES,
  type LaneConfig, type LaneEvent, type QueueStats, type Subscription, type CommandContext,
  type CommandPromise, type CommandEventPayload, type LaneErrorCode,
  type RedisQueueStats, type DeadLetter, type StartOptions, type RunManyOptions,
} from '../..';

const configs: LaneConfig[] = [
  { laneId: 'high', priority: 0, minConcurrency: 1, maxConcurrency: 4 },
  { laneId: 'low', priority: 1, minConcurrency: 1, maxConcurrency: 2 },
  { laneId: 'defaults' },
];
const lane: Lane = Lane.withLanes(configs, { maxWorkers: 8, eventCapacity: 1000 });
const other = new Lane({ lanes: configs });
new Lane();

lane.registerHandler<{ text: string }, { words: number }>('summarise', async ({ text }, context: CommandContext) => {
  const id: string = context.commandId;
  const signal: AbortSignal | undefined = context.signal;
  void id;
  void signal;
  return { words: text.split(' ').length };
}).registerHandler('sync', (payload: unknown) => payload);
const removed: boolean = lane.unregisterHandler('sync');

lane.start();
const json: string = lane.submit('high', 'my_command', JSON.stringify({ key: 'value' }));
const echoed: string = lane.submit('high', 'my_command');
const viaJson: CommandPromise<string> = lane.submitAsync('low', 'summarise', '{"text":"a b"}');
const controller = new AbortController();
const value: Promise<{ words: number }> = lane.run<{ words: number }>('low', 'summarise', { text: 'a' }, { signal: controller.signal });
const added: CommandPromise<number> = lane.add('low', async (context) => context.laneId.length, { commandType: 'len' });
const cancelled: boolean = lane.cancel(added.commandId);
const many: Promise<Array<CommandPromise<number>>> = lane.runMany<number>('low', [['summarise', { text: 'a' }], { commandType: 'echo', payload: 1 }], { signal: controller.signal });
const queuedIds: Promise<string[]> = lane.runMany('low', [['echo', 1]], { results: false, signal: controller.signal });
const withResults: Promise<Array<CommandPromise<unknown>>> = lane.runMany('low', [['echo', 1]], { results: true });
const manyOptions: RunManyOptions = { results: Math.random() < 0.5 };
const either: Promise<Array<CommandPromise<unknown>> | string[]> = lane.runMany('low', [['echo', 1]], manyOptions);

lane.pauseLane('low');
lane.resumeLane('low');

const subscription: Subscription = lane.subscribe((err: Error | null, event: LaneEvent) => {
  if (err) throw err;
  const payload = JSON.parse(event.payload) as CommandEventPayload | null;
  console.log(event.key, event.timestamp, payload?.command_id);
});
lane.subscribeFiltered([EVENTS.COMMAND_FAILED, 'queue.command.timeout'], (err, event) => {
  console.error('failure:', event.key);
});
subscription.unsubscribe();
const errors: number = subscription.callbackErrors;

const stats: QueueStats = lane.stats();
const first = stats.lanes[0];
const counts: number[] = [stats.totalPending, stats.totalActive, first.pending, first.active, first.minConcurrency,
  first.maxConcurrency, first.submitted, first.dispatched, first.completed, first.failed, first.cancelled];
const paused: boolean = first.paused;
const ids: string[] = lane.laneIds;
const flags: boolean[] = [lane.isStarted, lane.isShuttingDown];
const numbers: number[] = [lane.maxWorkers, lane.droppedEvents, DEFAULT_LANES[0].maxConcurrency];

async function finish(): Promise<void> {
  lane.shutdown();
  try {
    await lane.drain(30_000);
  } catch (error) {
    if (error instanceof LaneError) {
      const code: LaneErrorCode = error.code;
      console.error(code, error.message);
    }
  }
  await other.drain();
  await other.drain(Infinity);
  await other.drain(2 ** 31).catch((error: LaneError) => {
    if (error.code === 'ERR_LANE_INVALID_ARGUMENT' || error.code === 'ERR_LANE_TIMEOUT') throw error;
  });
}

void [json, echoed, viaJson, value, removed, cancelled, errors, counts, paused, ids, flags, numbers, finish];

// Redis mode
const shared = new Lane({ redis: 'redis://localhost:6379/0', queue: 'agents', leaseMs: 5000, maxWorkers: 4 });
const sharedCustom = Lane.withLanes([...configs, {
  laneId: 'api', timeoutMs: 500, retry: { maxRetries: 2, initialDelayMs: 50 }, rateLimit: { maxCommands: 5, windowMs: 1000 },
  priorityBoost: { deadlineMs: 2000, intervals: [[1500, 1], [500, 3]] },
}], { redis: 'redis://localhost:6379/0', queue: 'agents' });
shared.start({ worker: false });
sharedCustom.start({ keepAlive: true });
const where: { url: string; queue: string } | null = shared.redis;
const me: string | null = sharedCustom.workerId;
const clusterStats = shared.stats() as RedisQueueStats;
const lateAcks: number = clusterStats.lateAcks;
const workerTypes: string[] = clusterStats.workers[0].types;
const waiting: string = clusterStats.lanes[0].waiting;
const letters: Promise<DeadLetter[]> = shared.deadLetters();
const later: Promise<QueueStats> = shared.statsAsync();
const closed: Promise<void> = shared.close();
const redisCode: LaneErrorCode = 'ERR_LANE_REDIS_UNREACHABLE';
const start: StartOptions = { worker: true };
void [where, me, lateAcks, workerTypes, waiting, letters, later, closed, redisCode, start];
