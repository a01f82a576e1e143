"""``GET /v1/route``: where an SDK should connect (smart routing), in one package.

A request's path through the modules
------------------------------------
1. ``fast_path``: ``RouteFastPath``, pure ASGI, sits inside the metrics middleware
   and in front of FastAPI (``control_plane.app`` adds it). It answers
   ``GET /v1/route`` itself and passes everything else on. ``api`` declares the same
   route on a FastAPI router (``GET /v1/ping`` too), which is what the OpenAPI document
   describes; it serves the route only in an app built with ``fast_route=False``.
   Both hand the raw query string, headers and peer to one ``RouteService.answer``,
   so they decide alike (``tests/control_plane/test_fast_route.py`` compares them
   byte for byte).
2. ``service``: ``RouteService.answer`` runs the steps below in their contractual
   order (which decides the error a request with several problems gets).
3. ``request``: reads the parameters and headers as Starlette would; every refusal on
   the way is a ``RouteRefused`` (status, reason, headers).
4. ``cache``: ``SnapshotCache`` hands out the current ``snapshot.Snapshot``
   (gateways indexed by region, pool, zone and load step; regions; rules; tenants'
   keys) and reloads it in a worker thread when stale, through ``loading``. The
   request path never reads the database.
5. ``control_plane.tokens`` verifies the token against the snapshot's keys.
6. ``address``: the client's address (peer, or a trusted proxy's ``X-Forwarded-For``,
   or an admin's ``?ip=``), then ``control_plane.geoip`` gives country and continent.
7. ``choice``: the region, then (after ``data_plane.cluster.grayscale`` picked the
   pool) the best few live gateways for the account.
8. ``answer``: the JSON bytes, in the shape of ``models.RouteAnswer``.

No module imports one listed before it (``snapshot`` and ``models`` are at the
bottom, and ``control_plane.tokens`` reads ``snapshot``); this ``__init__`` imports
nothing, so ``tokens`` importing ``snapshot`` pulls in no more than that.
"""
