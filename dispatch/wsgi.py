"""WSGI entry point for several server processes behind a load balancer:

    REDIS_URL=redis://127.0.0.1:6379/0 gunicorn -k dispatch.gunicorn_worker.Worker \\
        -w 1 -b 127.0.0.1:5001 dispatch.wsgi:app

Run one such process per port (or per host) and have clients use the websocket transport
(`transports: ["websocket"]`, as static/js/live.js does), so no sticky sessions are needed.
Each process runs the SLA clock, as `griddispatch serve` does (a database lock lets one act),
so the app must be loaded in each worker once gunicorn has forked it: not with `--preload`.
"""

from gevent import monkey

monkey.patch_all()

from dispatch.app import create_app  # noqa: E402  (after patching, as gevent requires)
from dispatch.server import attach_live_and_clock  # noqa: E402

app = create_app()
app.extensions["griddispatch.db"].upgrade()
attach_live_and_clock(app)
