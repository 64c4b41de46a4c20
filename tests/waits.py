"""How long a test waits before it calls a step hung: the one number every timeout in the tests uses.

A timeout here only catches a hang. It is never the thing being measured (speed targets live in
`python -m lab.bench ...` and docs/speed.md), so it is set far above the slowest single step the tests wait for:
about 30 s on a quiet 2-core machine (a Streamlit page's first load with a toy training run, a torchrun job's
start, a Fashion-MNIST demo epoch), which another CPU-heavy process on the same cores may stretch to a few
times that. 600 s is 20x the quiet figure: reaching it means the step is stuck, not slow.
"""
import time

HANG_S = 600.0
HANG_MS = int(HANG_S * 1000)  # Playwright counts in milliseconds


def watch_until_done(live, timeout: float = HANG_S) -> None:
    """Wait for a page's live run to end, reading it as the page's live view does several times a second: a
    page's run holds while nobody reads it (`lab.train.live.LiveControl`, idle_hold_s)."""
    deadline = time.monotonic() + timeout
    while not live.done and time.monotonic() < deadline:
        live.control.latest()
        live.thread.join(0.2)
