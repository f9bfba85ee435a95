"""Lanes across machines, on Redis 7.

``Lane(redis="redis://host:6379/0", queue="agents")``,
``Lane.with_lanes([...], redis=..., queue=...)`` and
``QueueManagerBuilder(emitter).with_redis(url, queue=..., lease=10)`` give the
in-process API over one queue that every process naming the same URL and
queue shares. ``start()`` joins the process as a worker (slots =
``max_workers``, by default the in-process pool size); ``start(worker=False)``
joins as a producer only. ``submit``, ``subscribe``, ``stats`` and ``drain``
mean the whole queue; ``shutdown`` stops this process's intake.

Where the decisions are made
    ``lanes.lua`` (shipped in the package, loaded with FUNCTION LOAD as the
    library ``a3s_lane``) holds the C engine's scheduling rule and all queue
    state changes; each call is one atomic function call. Its header lists
    every key. Python (``connection.Functions``) and Node (``node/lib/redis``) call:

    =====================  =====================================================
    a3s_version            the library's VERSION (no keys)
    a3s_register_lanes     now, options JSON, lane config JSON... -> new lanes;
                           a stored lane that differs -> A3S_CONFLICT naming
                           the field and both values; nothing half-written
    a3s_join               now, worker id, slots, types JSON, lease ms, info
    a3s_leave              now, worker id (its commands back to the front)
    a3s_heartbeat          now, worker id, lease ms -> {known, reaped};
                           reaps workers whose lease ran out: their commands
                           back to the FRONT of their lane (a lost lease
                           counted; max_lost of them: dead letter). An
                           outage reaps nobody: a heartbeat over half its
                           lease late after Redis heard none for over half
                           a worker's lease gives that worker's lease a
                           fresh start (lanes.lua: reap)
    a3s_submit             now, id, lane, type, payload JSON, reply-to -> id
    a3s_submit_many        now, reply-to, (id, lane, type, payload)... -> how
                           many; all or none
    a3s_claim              now, worker id, free slots, acks JSON -> JSON:
                           acks (only while the lease is the worker's),
                           promotes due retries, picks up to `free` commands,
                           returns them and the next due time
    a3s_take_results       now, client, most -> up to `most` results, moved
                           to the client's ``:taken`` list
    a3s_cancel             now, id -> 1 if it was pending or delayed
    a3s_pause/a3s_resume   now, lane
    a3s_stats              now -> JSON (lanes, why a lane waits, workers)
    a3s_dead_letters       now, start, stop -> letters (JSON), oldest first
    =====================  =====================================================

    Every function takes the queue's base key ``a3s:{<queue>}`` as its one
    key (KEYS[1]) and derives the others from it, so every key of a queue
    carries the hash tag ``{<queue>}``: a queue lives on one shard, and a
    Redis Cluster spreads many queues. ``now`` is "" in production (Redis
    TIME); tests pass a time in milliseconds to replay scenarios.

Redis Cluster
    A ``redis+cluster://host:port`` URL (any node; ``rediss+cluster://``
    with TLS) gives redis-py's ``RedisCluster`` (FCALL routed by its key,
    no COMMAND GETKEYS round trip); the functions are loaded on every
    primary; the events reader uses a client of the queue's node (CLIENT
    ID / UNBLOCK), found again after an error. No function is flagged
    allow-cross-slot-keys, so the cluster itself refuses any call that
    would touch a second slot.

Versions
    Same VERSION: reused (a different text of the same version, a
    development build, is replaced). An older one from COMPATIBLE_FROM on:
    replaced in place. Anything else: ``LibraryVersionError`` naming both.

Durability is Redis's
    ``appendonly yes`` + ``appendfsync always``: a submit that returned, an
    ack and a result survive a Redis crash. ``appendfsync everysec`` (the
    usual AOF setting): the last second of them may be lost; a lost ack runs
    its command again, a lost submit is gone although it returned. No AOF
    (RDB snapshots, or none): everything since the last snapshot is lost,
    functions and lanes included (the client loads the functions again).
    Either way delivery is at least once: make handlers idempotent.
    A reply lost with Redis strands nothing: a worker adopts a command a
    lost claim reply leased to it (worker.py), a producer handles again a
    result a lost reply moved (``results:<client>:taken``, runtime.py).
"""
