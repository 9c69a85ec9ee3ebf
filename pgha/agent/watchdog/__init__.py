"""The watchdog: `device` is the port over /dev/watchdog or the emulation's socket; `softdog`
is the emulation daemon for hosts without a watchdog module.
"""

__all__ = ["device", "softdog"]
