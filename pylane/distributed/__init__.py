"""Partitions: CPU-bound commands in worker processes, every lane rule kept.

Threads cannot run Python code in parallel (the GIL), so CPU-bound commands
gain nothing from more worker threads. ``LocalDistributedQueue`` runs them in
worker processes, one per partition, and schedules them in this process with
the same C engine as ``QueueManager``:

    with LocalDistributedQueue(2) as queue:             # or .auto(): one per CPU
        future = queue.submit("query", crunch, 10_000)  # a concurrent.futures.Future
        print(future.result())

The package, by job:

- ``protocol``: the ``DistributedQueue`` protocol, envelopes and results,
  partitioners, partition stats;
- ``scheduler``: the scheduling step, the C engine deciding what starts and
  the partitioner where;
- ``coordinator``: ``LocalDistributedQueue``, the queue's face;
- ``threads``: its dispatcher thread and one thread per partition;
- ``processes``: the worker processes seen from the coordinator (start one,
  send a command, read the reply, stop it);
- ``worker``: what runs in a worker process (standard library only).
"""

from __future__ import annotations

from ..errors import (
    CommandSerializationError,
    RemoteCommandError,
    WorkerCrashedError,
)
from .coordinator import LocalDistributedQueue
from .protocol import (
    CommandEnvelope,
    CommandResult,
    DistributedQueue,
    HashPartitioner,
    LeastLoadedPartitioner,
    Partitioner,
    PartitionKey,
    PartitionStats,
    RemoteTraceback,
    RoundRobinPartitioner,
    stable_hash,
)

__all__ = [
    "CommandEnvelope",
    "CommandResult",
    "CommandSerializationError",
    "DistributedQueue",
    "HashPartitioner",
    "LeastLoadedPartitioner",
    "LocalDistributedQueue",
    "PartitionKey",
    "PartitionStats",
    "Partitioner",
    "RemoteCommandError",
    "RemoteTraceback",
    "RoundRobinPartitioner",
    "WorkerCrashedError",
    "stable_hash",
]
