"""Keeping Python's full garbage collections short in a long-running server process.

The locate index, the area names and the caches a server loads at start are some 200,000
long-lived objects, a few of them very large containers; CPython's full collection walks
all of them, about 100 ms on the demo map, and under load it runs every few seconds. In a
gevent server that stalls every request at once, and when it falls while a report holds
the event-log lock, every other report waits too (the intake's p99 at 100 reports/s on
PostgreSQL went from ~15 ms to ~300 ms in the runs it hit). Those objects are never
garbage, so once loaded they are moved out of the collector's way (`gc.freeze`), and again
after the index is rebuilt.
"""

from __future__ import annotations

import gc

from flask import Flask


def settle() -> None:
    """Collect once, then exempt every surviving object from later collections. What an
    earlier call exempted is looked at again first (an index since replaced, say)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def keep_long_lived(app: Flask) -> None:
    """Load what a server keeps for its whole life, settle the heap, and settle it again
    whenever the locate index is rebuilt."""
    index_cache = app.extensions["griddispatch.index"]
    with app.extensions["griddispatch.db"].session() as session:
        index_cache.get(session)
        app.extensions["griddispatch.roster"].get(session)
    index_cache.on_load = settle
    settle()
