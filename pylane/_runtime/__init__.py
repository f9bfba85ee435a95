"""The private runtime behind the public classes: the queue and its workers
(``queue``, ``execution``, ``pool``), the job table and futures (``jobs``,
``future``), recovery from storage, the engine wrapper, command deadlines
(``timeouts``) and the metrics feed. Nothing here is public API: import
from ``pylane``.
"""
