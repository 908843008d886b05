"""One process per workdir: `train` and `sweep` hold WORKDIR/.lock while they run.

The lock is an flock on the file, so the kernel drops it when its process dies, however it
dies (kill -9 included): a lock file left behind by a dead process is taken over, and said so.
The file records who holds it (pid, host, command, start time) for the message a second
process prints.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys

LOCK_FILE = ".lock"


class WorkdirInUse(RuntimeError):
    """Another live process is training in this workdir."""


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')}: {holder.get('command', '?')}")


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Holds WORKDIR/.lock for the duration; raises WorkdirInUse if another process holds it."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirInUse(f"{os.path.abspath(workdir)} is in use by {_describe(_read(fd))}; "
                               "wait for it to finish or stop it first") from None
        previous = _read(fd)
        if previous.get("pid") and previous.get("pid") != os.getpid():
            print(f"took over the stale lock of {os.path.abspath(workdir)} ({_describe(previous)}; "
                  "that process is gone)", file=sys.stderr, flush=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
              "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a clean exit leaves no holder to report as stale
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read(fd) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except ValueError:
        return {}
