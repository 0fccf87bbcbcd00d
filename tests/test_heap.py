"""A server's long-lived objects are moved out of the garbage collector's way once loaded,
and again after each rebuild of the locate index (dispatch.heap)."""

from __future__ import annotations

import gc

import pytest

from dispatch import heap
from grids.io import import_file
from grids.store import bump_revision
from tests.geodata import at, tree_file


@pytest.fixture
def settled_app(app, tmp_path):
    with app.extensions["griddispatch.db"].session() as s:
        import_file(s, tree_file(tmp_path))
    gc.unfreeze()
    heap.keep_long_lived(app)
    yield app
    gc.unfreeze()  # the rest of the test run collects as usual


def test_loading_a_server_freezes_its_index_and_caches(settled_app):
    cache = settled_app.extensions["griddispatch.index"]
    assert cache.index is not None and settled_app.extensions["griddispatch.roster"].roster is not None
    assert gc.get_freeze_count() > 0
    # gc.get_objects() lists what collections walk; frozen objects are not among them.
    assert all(o is not cache.index for o in gc.get_objects())
    assert cache.on_load is heap.settle


def test_a_rebuilt_index_is_settled_again_and_only_then(settled_app):
    cache = settled_app.extensions["griddispatch.index"]
    rebuilt = []
    cache.on_load = lambda: (rebuilt.append(cache.revision), heap.settle())
    client = settled_app.test_client()
    lon, lat = at(0.3, 0.3)
    assert client.get(f"/api/v1/locate?lon={lon}&lat={lat}").status_code == 200
    assert rebuilt == []  # the index in memory is current: nothing to rebuild or settle
    with settled_app.extensions["griddispatch.db"].session() as s:
        bump_revision(s)  # as an import by another process would
    assert client.get(f"/api/v1/locate?lon={lon}&lat={lat}").status_code == 200
    assert rebuilt == [cache.revision] and gc.get_freeze_count() > 0
