# Clocks per host: each host reads its own monotonic and wall clocks, which differ from true time
# by an offset, a drift (ppm) and jumps. The engine only reads the monotonic clock, and never
# compares readings across hosts; wall clocks are simulated too so that designs which misuse wall
# time can be shown to fail (issue 3, "Clocks per host"). A jump moves the wall clock only, as an
# NTP step or `date -s` does; monotonic clocks never jump, but drift changes their rate.
"""Per-host simulated clocks: offset, drift and jumps."""

from __future__ import annotations

from dataclasses import dataclass

WALL_EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z: wall clocks start here plus their offset


@dataclass(slots=True)
class HostClock:
    """A host's clocks as functions of true (simulator) time.

    Readings are piecewise linear in true time: `base + (t - since) * (1 + drift_ppm / 1e6)`.
    Changing the drift re-bases both clocks at the change, so readings stay continuous.
    """

    mono_origin_s: float = 0.0  # a host-specific, meaningless monotonic origin
    offset_s: float = 0.0
    drift_ppm: float = 0.0
    _mono_base: float = 0.0
    _wall_base: float = 0.0
    _since: float = 0.0

    def __post_init__(self) -> None:
        self._mono_base = self.mono_origin_s
        self._wall_base = WALL_EPOCH_S + self.offset_s

    def _rate(self) -> float:
        return 1.0 + self.drift_ppm / 1e6

    def mono(self, t: float) -> float:
        """The monotonic clock at true time `t`."""
        return self._mono_base + (t - self._since) * self._rate()

    def wall(self, t: float) -> float:
        """The wall clock at true time `t`."""
        return self._wall_base + (t - self._since) * self._rate()

    def set_drift(self, t: float, drift_ppm: float) -> None:
        """From true time `t` on, run `drift_ppm` fast (negative: slow)."""
        self._mono_base, self._wall_base, self._since = self.mono(t), self.wall(t), t
        self.drift_ppm = drift_ppm

    def jump(self, t: float, by_s: float) -> None:
        """Step the wall clock by `by_s` at true time `t` (monotonic time does not jump)."""
        self._wall_base, self._mono_base, self._since = self.wall(t) + by_s, self.mono(t), t

    def true_time_at_mono(self, mono_s: float) -> float:
        """When (true time) this clock's monotonic reading reaches `mono_s` (for sleeping)."""
        return self._since + (mono_s - self._mono_base) / self._rate()
