"""glibc malloc settings for XLA:CPU, applied by the command line before JAX allocates anything.

XLA:CPU allocates every execution's buffers afresh, from its worker threads. With glibc's
defaults each thread gets its own arena, big blocks come from fresh mmaps and freed memory is
trimmed back to the kernel, so every train step faults its activation memory in again, 4 KiB at
a time (about 15,900 minor faults per step on configs/gpt_shakespeare.py:cpu). One arena that
keeps what it frees removes nearly all of them; measured in
experiments/shakespeare_char/bench/bench_malloc.py.

LLM_JAX_MALLOC picks how:
  mallopt  (default) mallopt(3) in this process: one arena, mmap and trim thresholds 1 GiB.
  env      re-execute the process once with the same settings as MALLOC_* variables plus
           GLIBC_TUNABLES=glibc.malloc.hugetlb=1, which glibc reads only at process start.
  default  leave glibc alone.
Elsewhere than Linux with glibc (macOS, musl) nothing is done. A setting the user already gave
glibc through its own environment variables is left as the user set it.
"""

import ctypes
import os
import sys

ENV_VAR = "LLM_JAX_MALLOC"
MODES = ("mallopt", "env", "default")
DEFAULT_MODE = "mallopt"
_GIB = 1 << 30
# name: (mallopt parameter number from glibc's malloc.h, value, glibc's environment alias,
# its GLIBC_TUNABLES name)
MALLOPT_SETTINGS = {
    "M_ARENA_MAX": (-8, 1, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
    "M_MMAP_THRESHOLD": (-3, _GIB, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
    "M_TRIM_THRESHOLD": (-1, _GIB, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
}
TUNED_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(_GIB),
             "MALLOC_TRIM_THRESHOLD_": str(_GIB)}
HUGETLB_TUNABLE = "glibc.malloc.hugetlb=1"
# set in the re-executed process's environment, so that it neither re-executes again nor
# (being a child of a tuned process) ever loops
_REEXEC_MARK = "_LLM_JAX_MALLOC_REEXECUTED"

_applied: str | None = None


def _glibc():
    """The C library if it is glibc (the only one whose mallopt takes these parameters)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (musl has mallopt but not this)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return libc


def _user_set(env_alias: str, tunable: str) -> bool:
    return env_alias in os.environ or tunable + "=" in os.environ.get("GLIBC_TUNABLES", "")


def _mallopt(libc) -> str:
    refused = []
    for name, (param, value, env_alias, tunable) in MALLOPT_SETTINGS.items():
        if not _user_set(env_alias, tunable) and libc.mallopt(param, value) != 1:
            refused.append(name)
    if refused:  # glibc keeps its default for these; training still works, only slower
        print(f"llm_jax: glibc refused mallopt({', '.join(refused)}); {ENV_VAR}=env sets them "
              "through the environment instead", file=sys.stderr)
        return "mallopt-partial"
    return "mallopt"


def tuned_environ(environ=None) -> dict:
    """`environ` (default os.environ) plus TUNED_ENV and hugetlb, the user's own values kept."""
    env = dict(os.environ if environ is None else environ)
    for k, v in TUNED_ENV.items():
        env.setdefault(k, v)
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb=" not in tunables:
        env["GLIBC_TUNABLES"] = f"{tunables}:{HUGETLB_TUNABLE}" if tunables else HUGETLB_TUNABLE
    return env


def _reexec(libc) -> str:
    if os.environ.get(_REEXEC_MARK):
        return "env"
    argv = getattr(sys, "orig_argv", None)
    if not argv:  # embedded interpreter: no command line to restart with
        return _mallopt(libc)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], {**tuned_environ(), _REEXEC_MARK: "1"})
    raise AssertionError("unreachable")  # pragma: no cover


def tune_malloc(mode: str | None = None) -> str:
    """Applies the allocator settings once per process; returns what is in effect.

    mode: one of MODES; default $LLM_JAX_MALLOC, else DEFAULT_MODE. Returns "default" (opted
    out), "unsupported" (not glibc), "mallopt", "mallopt-partial" (glibc refused some) or
    "env". Calls after the first return the first call's result and change nothing, so glibc's
    settings cannot be changed half-way through a run. "env" replaces the process (os.execve)
    unless it is already the re-executed one.
    """
    global _applied
    if _applied is not None:
        return _applied
    mode = mode or os.environ.get(ENV_VAR) or DEFAULT_MODE
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(MODES)}")
    libc = None if mode == "default" else _glibc()
    if mode == "default":
        _applied = "default"
    elif libc is None:
        _applied = "unsupported"
    elif mode == "env":
        _applied = _reexec(libc)
    else:
        _applied = _mallopt(libc)
    return _applied
