# The public analysis API for notebooks: histories (simulated or from `pgha chaos run`) as pandas
# DataFrames, the failover episodes and intervals the checkers see, the report's timeline as a
# matplotlib Figure, and parameter sweeps with a caller's runner. Needs the `notebooks` extra
# (pandas, matplotlib). It runs no world: the simulator's `simulate` and `sweep` are in
# sim/analysis.py (the `sim` extra). `import pgha` never imports this.
"""Analysis of pgha run histories for Jupyter: DataFrames, failover episodes, timelines, sweeps.

A "history" argument is anywhere a path to a JSON Lines history (history.jsonl), an iterable of
`pgha.history.Event`, or a DataFrame returned by `load_history` / `simulate`.

Example::

    from pgha.analysis import episodes, load_history, timeline
    from sim.analysis import simulate, sweep  # the simulator's runs

    df = simulate("scenarios/primary-crash.yaml", seed=3)  # or load_history("history.jsonl")
    steps = episodes(df)  # one row per fault that hit a primary
    t = steps.t_fault.iloc[0]
    timeline(df, t_range=(t - 5, t + 40), decisions=True)  # the report's picture, zoomed
    study = sweep("scenarios/primary-crash.yaml", grid={"ttl": [20, 30], "loop_wait": [5, 10]},
                  seeds=range(10))
    study.groupby(["ttl", "loop_wait"]).failover_s.describe()

In a script (not a notebook), call `sweep` with workers > 1 under `if __name__ == "__main__":`.
"""

from __future__ import annotations

try:
    import matplotlib  # noqa: F401
    import pandas  # noqa: F401
except ImportError as _missing:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"pgha.analysis needs pandas and matplotlib ({_missing.name} is missing): "
        "pip install 'pgha[notebooks]'"
    ) from _missing

from pgha.analysis._episodes import STEADY_REASONS, episodes
from pgha.analysis._frames import History, events_from_frame, frame_of, load_history, save_history
from pgha.analysis._scenarios import ScenarioSource, resolve_scenario
from pgha.analysis._sweep import METRICS, Runner, measure, run_sweep
from pgha.analysis._views import decisions, dual_writable, timeline, unavailability
from pgha.history import HistoryError

__all__ = [
    "METRICS",
    "STEADY_REASONS",
    "History",
    "HistoryError",
    "Runner",
    "ScenarioSource",
    "decisions",
    "dual_writable",
    "episodes",
    "events_from_frame",
    "frame_of",
    "load_history",
    "measure",
    "resolve_scenario",
    "run_sweep",
    "save_history",
    "timeline",
    "unavailability",
]


_MOVED = {"simulate": "sim.analysis", "sweep": "sim.analysis"}


def __getattr__(name: str) -> object:
    # A notebook written for the old face gets the new home in the error. ImportError, so that
    # `from pgha.analysis import simulate` shows this message rather than Python's own.
    if name in _MOVED:
        raise ImportError(
            f"pgha.analysis.{name} runs the simulator and moved to {_MOVED[name]}: "
            f"from {_MOVED[name]} import {name}"
        )
    raise AttributeError(f"module 'pgha.analysis' has no attribute {name!r}")
