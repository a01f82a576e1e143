"""Load generators and the benchmark report of cirno-im (``python -m bench.run``).

- :mod:`bench.chat_bench`: 1:1 chat, N sender/receiver pairs over WebSocket;
- :mod:`bench.group_bench`: one sender to a 1,000-member group;
- :mod:`bench.conn_bench`, :mod:`bench.login_bench`, :mod:`bench.catchup_bench`: gateway
  memory per idle connection, logins with a new connection each, a new device's sync;
- :mod:`bench.pinning`: the ``--pinned`` mode (server on one core, load on another);
- :mod:`bench.relay`: the bare relay baseline (two asyncio hops, no storage);
- :mod:`bench.targets`: the systems under test, started as real processes;
- :mod:`bench.run`: runs them, prints tables, writes ``bench/results/*.json``;
- :mod:`bench.report`: the markdown tables of those results;
- :mod:`bench.client`, :mod:`bench.procs`, :mod:`bench.stats`: logged-in clients, CPU
  time per process from ``/proc``, percentiles and machine information.

``bench/route_bench.py`` (the ``/v1/route`` benchmark) stands on its own.

Results and how to read them: ``docs/benchmarks.md``.
"""

from __future__ import annotations
