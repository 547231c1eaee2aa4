"""The first module the local pool's fork server imports (radlang/backends/executors/local.py), before the libraries
its workers will use: importing it is the server's set-up, as `init_local_worker` is a worker's.

- One thread per numeric library: OpenBLAS and OpenMP read THREAD_VARS when they are loaded, which is in the server,
  once, for every worker forked from it.
- The server dies with the run: the run started it from its main thread, so the kernel's parent-death signal is armed
  here (the server has no thread of its own to watch with: it forks). Its workers' own signal is armed on the server.
"""

from radlang.backends.executors.worker import arm_parent_death_signal, limit_threads

limit_threads()
arm_parent_death_signal()
