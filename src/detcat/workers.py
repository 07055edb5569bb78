"""Worker processes that die with the process that started them.

A build killed with ``kill -9`` cannot shut its pool down; without help its
workers would go on parsing for nobody. Each worker therefore asks Linux to
kill it when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, on every
system, also watches its parent from a thread: when the parent's id changes
(the worker was re-parented), it exits at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import faulthandler
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

_PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2


@contextmanager
def workers_pool(
    n: int, setup: Callable[..., None] | None = None, *args: Any
) -> Iterator[ProcessPoolExecutor]:
    """A process pool of ``n`` workers bound to this process's life.
    ``setup(*args)`` runs first in every worker: it hands each worker the same
    data once. Such a pool forks where the system can: ``args`` are then the
    parent's memory as it was (shared until written), not copies sent through
    a pipe, which for a build's rows costs more than the work shared."""
    with ProcessPoolExecutor(
        max_workers=n, mp_context=pool_context(setup is not None), initializer=_started,
        initargs=(os.getpid(), setup, args),
    ) as pool:  # fmt: skip
        yield pool


def pool_context(shares_memory: bool) -> Any:
    """How detcat's worker pools start: by fork where a pool shares its parent's
    memory and the system can fork, and wherever fork is the safe choice (all but
    macOS, whose default is spawn). A fork server (Python 3.14's default on Linux
    and the BSDs) would import detcat again in every worker, and make the server,
    not this process, the workers' parent, which ``_started`` takes for a dead
    parent. None: the system's default."""
    fork = shares_memory or sys.platform != "darwin"
    if fork and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


def _started(parent: int, setup: Callable[..., None] | None, args: tuple[Any, ...]) -> None:
    """Runs first in every worker."""
    _report_crashes()
    _die_with_parent_linux()
    if os.getppid() != parent:  # the parent died before we got here
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if setup is not None:
        # A forked worker holds the parent's whole heap: frozen, the collector
        # leaves it alone (walking it would also copy every page it touches).
        gc.freeze()
        setup(*args)


def _report_crashes() -> None:
    """A crash in C code prints where it happened, on the process's stderr (file
    descriptor 2: ``sys.stderr`` may be an object without one, as under click's
    CliRunner, and a worker must start anyway)."""
    with suppress(OSError, ValueError):
        faulthandler.enable(file=2)


def _die_with_parent_linux() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watching thread still ends the worker


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)
