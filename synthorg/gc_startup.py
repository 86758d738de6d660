"""Keep a serving process's start-up objects out of the garbage collector's full passes.

A web worker loads Django, the apps, DRF and whatever its start-up checks use (a secret
manager's client among them) before it serves: hundreds of thousands of long-lived objects that
a full (generation 2) collection walks every time, although none of them ever becomes garbage.
Such a pass took 0.2-0.3 s in the in-process receiver of bench/secret_backends.py (issue 14) and
hit whichever request was running: a throughput loss and a latency spike. `gc.freeze()` moves everything alive
now into the permanent generation, so later full passes walk only what requests created (about
0.02 s there). The cost: a reference cycle among the frozen objects is never collected, which for
objects made at import time is nothing.
"""
from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once (so no start-up garbage is frozen), then freeze what is left. Call after the
    application is loaded and before it serves; calling it again freezes what was made since."""
    gc.collect()
    gc.freeze()
