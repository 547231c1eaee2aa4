"""Set-up run inside every worker process, whatever executor started it: one thread per worker for the numeric
libraries, and (for workers this run started) death with the run, so that `kill -9` of `radlang run` leaves no
worker behind holding memory."""

from __future__ import annotations

import os
import sys
import threading
import time

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")

_PR_SET_PDEATHSIG = 1         # linux/prctl.h
_SIGKILL = 9
WATCH_S = 0.5                 # how often a worker checks that its parent is alive


def limit_threads():
    # One thread per worker for ITK and BLAS, so N workers don't oversubscribe N cores. The libraries read these
    # variables when they are first imported or used (ITK: its global default number of threads), so a worker that
    # only fits models never imports SimpleITK; a library already imported is told directly.
    for var in THREAD_VARS:
        os.environ[var] = "1"
    sitk = sys.modules.get("SimpleITK")
    if sitk is not None:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def die_with_parent(parent_pid: int, kernel_signal: bool):
    """Exit when the process `parent_pid` is gone. With `kernel_signal` (Linux; only when the thread that started
    this process lives as long as its process does, because the kernel sends the parent-death signal when that
    *thread* ends) the kernel kills this process the moment the parent dies, even in the middle of a C call. A daemon
    thread also polls the parent id every WATCH_S seconds (other systems; a parent that died before the signal was
    armed)."""
    if kernel_signal:
        arm_parent_death_signal()

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(WATCH_S)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=watch, name="radlang-parent-watch", daemon=True).start()


def arm_parent_death_signal():
    """On Linux, have the kernel SIGKILL this process when the thread that started it ends (elsewhere: nothing)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


def exit_without_teardown():
    """At interpreter exit, leave at once instead of tearing the interpreter down. A pool worker ends only when the
    pool is shut down, after every result has been sent back, so it holds nothing left to save; its teardown (every
    module it imported freed one by one: ~0.5 s with PyRadiomics, seconds with torch) is time that the run waits for
    while the pool joins its workers. This is how a forked multiprocessing worker ends (os._exit after its task)."""
    import atexit

    def leave():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        os._exit(0)

    atexit.register(leave)      # atexit runs its handlers last-registered first: this one is registered before any
    #                             library's, so theirs (their own flushing) run before it


def init_local_worker(parent_pid: int, kernel_signal: bool, imports: tuple[str, ...] = ()):
    """The initializer of the local process pool's workers; `imports`: modules the work will need (a pool started ahead
    of its first task, LocalPool.start)."""
    limit_threads()
    die_with_parent(parent_pid, kernel_signal)
    exit_without_teardown()
    import_all(imports)


def import_all(imports: tuple[str, ...]):
    """Import `imports` in a worker before its first task (the local pool's initializer; the Dask executor's `start`).
    One that fails to import is left to the task that needs it to report."""
    import importlib

    for name in imports:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    limit_threads()             # a library imported just now is told too


def radlang_version() -> str:
    """The radlang version a worker imports (checked against the run's before a remote cluster is used)."""
    from radlang import __version__

    return __version__
