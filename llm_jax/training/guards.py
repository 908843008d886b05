"""What keeps a training run from saving a bad state or losing work: non-finite steps are caught
before any checkpoint is written, and SIGTERM / Ctrl-C stop at a step boundary with a save."""

import signal
import threading

import jax
import numpy as np


class NonFiniteError(FloatingPointError):
    """A step's loss or gradient norm was NaN or infinite; nothing after the last good
    checkpoint was saved."""


class TrainingInterrupted(Exception):
    """SIGTERM or Ctrl-C stopped training at a step boundary, after saving a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention for "killed by signal N"


class FiniteWatch:
    """Keeps each step's device-side "non-finite" code (bit 1: loss, bit 2: gradient norm)
    until the next check, so no step waits for the host; `check` raises on the first bad one."""

    def __init__(self):
        self.pending = []  # (step, device int32 code)

    def add(self, step: int, code):
        self.pending.append((step, code))

    def check(self, last_good_checkpoint, directory):
        codes = jax.device_get([c for _, c in self.pending])
        steps = [s for s, _ in self.pending]
        self.pending = []
        bad = np.flatnonzero(np.asarray(codes, np.int32))
        if not len(bad):
            return
        step, code = steps[bad[0]], int(codes[bad[0]])
        what = " and ".join(q for q, bit in (("loss", 1), ("gradient norm", 2)) if code & bit)
        kept = (f"the last good checkpoint, step {last_good_checkpoint}, is kept in {directory}"
                if last_good_checkpoint is not None else "no checkpoint was saved")
        raise NonFiniteError(f"the training {what} became non-finite at step {step}; stopped at "
                             f"step {steps[-1]} without saving, and {kept}. Lower "
                             "config.optimizer.lr, raise warmup_steps or check the data")


def nonfinite_code(loss, grad_norm):
    return (~jax.numpy.isfinite(loss)).astype(jax.numpy.int32) + \
        2 * (~jax.numpy.isfinite(grad_norm)).astype(jax.numpy.int32)


class GracefulStop:
    """SIGTERM (the preemption signal of clusters and cloud accelerators) and a first Ctrl-C set
    `requested`, for the loop to act on at the next step boundary; a second Ctrl-C raises
    KeyboardInterrupt at once. Handlers are installed only in the main thread (signals cannot
    be caught elsewhere) and restored on exit."""

    def __init__(self):
        self.requested = None  # the signal number, once one arrived
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
