"""Units of fold work in this process or in a pool of worker processes.

Workers are spawned (fork after torch/OpenMP start-up can deadlock), train with one torch
thread each, receive the run's plan and shared features once, and end with the run's process.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterator, Sequence

_WORKER: dict = {}


def run_units(fn: Callable, units: Sequence, workers: int, *shared) -> Iterator:
    """Yield the items of ``fn(*shared, unit)`` for every unit (in completion order with
    several workers). ``fn`` must be a module-level function (it is pickled by name)."""
    if workers == 1 or len(units) <= 1:
        for unit in units:
            yield from fn(*shared, unit)
        return
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(fn, shared))
    try:
        for fut in as_completed([pool.submit(_worker_unit, unit) for unit in units]):
            yield from fut.result()
    except BaseException:  # Ctrl-C or an error: queued units are cancelled, running ones stopped
        _stop(pool)
        raise
    pool.shutdown()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued units and end the workers now: waiting for them (as the executor's
    own exit does) would finish every queued fold only to throw its result away. What the
    caller already received (and wrote) stays; an interrupted fold is trained again on resume."""
    processes = list((pool._processes or {}).values())  # the executor offers no public handle
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(timeout=10)


def _worker_init(fn: Callable, shared: tuple) -> None:
    import torch

    _end_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it stops the workers
    torch.set_num_threads(1)
    _WORKER.update(fn=fn, shared=shared)


def _worker_unit(unit) -> list:
    return list(_WORKER["fn"](*_WORKER["shared"], unit))


def _end_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the run's process dies, so killing a run does not
    leave its workers training folds nobody will collect."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the call above
        os._exit(1)
