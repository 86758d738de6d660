"""A served process freezes its start-up heap (synthorg/gc_startup.py), so a full GC pass walks
only what requests made: unfrozen, such a pass over the receiver's start-up objects took
0.2-0.3 s (bench/secret_backends.py)."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_freeze_collects_start_up_garbage_and_freezes_the_rest() -> None:
    from synthorg.gc_startup import freeze_startup_heap

    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # type: ignore[attr-defined]
    gone = weakref.ref(garbage)
    del garbage
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        frozen = gc.get_freeze_count()
        assert frozen > before
        assert gone() is None  # the garbage cycle was collected first, not frozen for good
    finally:
        gc.unfreeze()  # the test process goes back to collecting as before


def test_the_wsgi_module_freezes_the_loaded_application() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    code = "import gc; assert gc.get_freeze_count() == 0; import synthorg.wsgi; print(gc.get_freeze_count())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.strip().splitlines()[-1]) > 10_000  # Django and the apps, not a handful
