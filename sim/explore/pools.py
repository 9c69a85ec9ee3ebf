# Where trials run: in this process (one worker, no process overhead), in worker processes, or on
# a Dask cluster, all behind one `concurrent.futures.Executor` interface, with a few trials per
# worker in flight. The seed sweep and shrinking both run on a `Pool`.
"""Where trials run: inline, worker processes or a Dask cluster, as one `Executor`."""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from sim.explore.space import ExploreError

DASK_CONNECT_TIMEOUT = "10s"  # how long to try reaching a Dask scheduler


class InlineExecutor(Executor):
    """Runs each call at once in this process (one worker without process overhead)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


@dataclass(frozen=True, slots=True)
class Pool:
    """Where trials run, and how many of them to keep in flight there."""

    executor: Executor
    slots: int


@contextlib.contextmanager
def pool(workers: int = 1, dask_address: str | None = None) -> Iterator[Pool]:
    """Where trials run: this process (1 worker), worker processes, or a Dask cluster.

    Raises:
        ExploreError: Dask is not installed or its scheduler cannot be reached.
    """
    if dask_address is not None:
        with _dask_pool(dask_address) as remote:
            yield remote
    elif workers <= 1:
        yield Pool(InlineExecutor(), 1)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context()) as local:
            yield Pool(local, 2 * workers)


def _mp_context() -> Any:
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


@contextlib.contextmanager
def _dask_pool(address: str) -> Iterator[Pool]:
    try:
        distributed = importlib.import_module("distributed")
    except ImportError:
        raise ExploreError("--dask needs Dask: pip install 'pgha[explore]'") from None
    try:
        client = distributed.Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise ExploreError(f"--dask: cannot reach a Dask scheduler at {address}: {error}") from None
    try:
        threads = sum(client.nthreads().values())
        remote: Executor = client.get_executor(pure=False)
        yield Pool(remote, 2 * max(1, threads))
    finally:
        client.close()


def default_workers() -> int:
    """All cores."""
    return os.cpu_count() or 1
