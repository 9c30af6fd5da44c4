"""Entry point for `python -m wrn_core`."""

import atexit
import os
import sys

from wrn_core.cli import main

# Commands that train, or wait for the processes that train: the job manager's processes (every
# dashboard job, every sweep cell) run train or resume; a sweep ends when its last cell has.
TRAINING_COMMANDS = ("train", "resume", "sweep")


def exit_without_teardown(code: int) -> None:
    """End the process as soon as its run has ended: exit handlers run and the standard streams are
    flushed, but the interpreter's teardown of torch's modules is skipped (about 1 s on this 2-core CPU,
    measured from the run's final status to the process's exit), so a job manager's next job starts
    that much sooner. Nothing is lost: the run store opens and closes its file for every write, and the
    run's lock (an fd) is released by the OS when the process ends."""
    atexit._run_exitfuncs()  # what sys.exit would run: multiprocessing, compile worker pools, tqdm
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to say to it
            pass
    os._exit(code)


if __name__ == "__main__":
    code = main()
    if sys.argv[1:2] and sys.argv[1] in TRAINING_COMMANDS:
        exit_without_teardown(int(code or 0))
    sys.exit(code)
