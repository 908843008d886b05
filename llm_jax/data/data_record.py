"""WORKDIR/data_files.json: which file (path, size, sha256, part, encoding) each split was read
from, so that a result can be traced to exactly what made it, and so that a later read of the
same split from other data (another data directory, an edited file) stops with an error instead
of silently training on or scoring other text.

  {"format": 1, "splits": {"train": {"path": ..., "size": ..., "sha256": ..., "part": ...,
                                     "encoding": ...}, ...}}

A split is recorded the first time the run reads it; every later read is checked against it.
"""

from __future__ import annotations

import json
import os
import pathlib

from llm_jax.data.text_files import TextSlice, file_digest

RECORD_FILE = "data_files.json"
FORMAT = 1


class DataChangedError(ValueError):
    """A split's data is not what this run read before."""


_digests: dict[tuple, tuple[int, str]] = {}  # per process: hash each file once


def digest(path: os.PathLike | str) -> tuple[int, str]:
    """(size, sha256) of a file; remembered while the file's size, mtime and inode stay put."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _digests:
        _digests[key] = file_digest(path)
    return _digests[key]


def entry(source: TextSlice) -> dict:
    size, sha = digest(source.path)
    return {"path": str(source.path), "size": size, "sha256": sha, "part": source.describe(),
            "encoding": source.encoding}


def read_record(workdir) -> dict:
    path = pathlib.Path(workdir, RECORD_FILE)
    if not path.is_file():
        return {"format": FORMAT, "splits": {}}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["splits"].items()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise DataChangedError(f"{path} is not a data record this code wrote (expected JSON with "
                               "a 'splits' object); restore it or delete it") from None
    return record


def _mismatch(split: str, old: dict, new: dict, record_path) -> str | None:
    where = f"(recorded in {record_path})"
    if old["path"] != new["path"]:
        return (f"split {split!r} is now read from {new['path']}, but this run read "
                f"{old['path']} {where}; point config.data.corpus or $LLM_JAX_DATA_DIR back at "
                f"it, or if the same data only moved, delete {record_path}")
    if (old["size"], old["sha256"]) != (new["size"], new["sha256"]):
        return (f"{new['path']} (split {split!r}) has changed since this run read it: size "
                f"{old['size']} -> {new['size']} bytes, sha256 {old['sha256'][:12]}... -> "
                f"{new['sha256'][:12]}... {where}; restore the file, or train in a new workdir")
    for field in ("part", "encoding"):
        if old.get(field, new[field]) != new[field]:
            return (f"split {split!r} of {new['path']} is now read with {field} {new[field]!r}, "
                    f"but this run read it with {old[field]!r} {where}; set config.data back "
                    "(corpus, valid_fraction, encoding), or train in a new workdir")
    return None


def check_split(workdir, split: str, source: TextSlice) -> bool:
    """Raises DataChangedError if `split` was recorded from other data; False if unrecorded."""
    record = read_record(workdir)
    old = record["splits"].get(split)
    if old is None:
        return False
    problem = _mismatch(split, old, entry(source), pathlib.Path(workdir, RECORD_FILE))
    if problem:
        raise DataChangedError(problem)
    return True


def record_split(workdir, split: str, source: TextSlice) -> dict:
    """Checks a recorded split against its data now, or records it; returns its entry."""
    if check_split(workdir, split, source):
        return entry(source)
    record = read_record(workdir)
    record["splits"][split] = entry(source)
    path = pathlib.Path(workdir, RECORD_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # a crash never leaves half a record
    return record["splits"][split]
