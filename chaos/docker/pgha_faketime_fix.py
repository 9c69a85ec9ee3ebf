# Installed into the image's venvs (with pgha_faketime_fix.pth, run at interpreter start): works
# around libfaketime 0.9.10 (Debian bookworm) breaking Python >= 3.11's time.sleep when the
# monotonic clock is excluded from faking (FAKETIME_DONT_FAKE_MONOTONIC=1, libfaketime issue
# #426): Python sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...), libfaketime
# passes a negative time to the kernel and time.sleep raises EINVAL. It protects the rule "a clock
# fault skews only the wall clock": the agent keeps sleeping on the real monotonic clock. Inert
# unless libfaketime is preloaded with the monotonic clock excluded.
"""time.sleep without clock_nanosleep(TIMER_ABSTIME), for processes under libfaketime."""

import os
import select
import time
from typing import SupportsIndex


def _sleep(secs: float | SupportsIndex) -> None:
    """time.sleep on the real monotonic clock, waiting in select() (a relative timeout)."""
    secs = float(secs)
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + secs
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        select.select([], [], [], left)


def install() -> None:
    """Replace time.sleep when libfaketime runs with the monotonic clock excluded."""
    preload = os.environ.get("LD_PRELOAD", "")
    if "libfaketime" in preload and os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
        time.sleep = _sleep


install()
