"""`serve.heap.freeze_startup_heap`: what a server built at start-up leaves the collector."""

from __future__ import annotations

import gc
import weakref

from distilltrace.serve.heap import freeze_startup_heap


class _Node:
    pass


def test_startup_heap_frozen_and_later_garbage_still_collected():
    """Objects that exist when the server starts move to the permanent generation (full
    collections no longer traverse them); cyclic garbage made afterwards is collected."""
    try:
        n = freeze_startup_heap()
        assert n > 1000 and gc.get_freeze_count() == n
        a = _Node()
        a.self = a  # a reference cycle: only the cyclic collector frees it
        alive = weakref.ref(a)
        del a
        gc.collect()
        assert alive() is None
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
