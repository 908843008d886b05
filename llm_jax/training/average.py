"""`average`: the element-wise mean of a run's last N checkpoints, written as a new workdir.

Vaswani et al. (2017) average the last 5 checkpoints of their base Transformers and the last 20
of the big ones. The output is an ordinary workdir (config.json, data_files.json, tokenizer/,
checkpoints/<latest step>) so eval, generate and llm_jax.load read it unchanged; averaged.json
records where the parameters came from. The source workdir is only read.
"""

import datetime
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from llm_jax.data.split_reader import TOKENS_DIR
from llm_jax.training.checkpoints import (
    DAMAGED_DIR,
    Checkpointer,
    CheckpointError,
    CheckpointMismatch,
    short_error,
)
from llm_jax.training.experiment import SUMMARY_FILE, load_config
from llm_jax.training.runners import TASK_RUNNERS
from llm_jax.training.trainer import BEST_DIR
from llm_jax.training.workdir_lock import LOCK_FILE

REPORT_FILE = "averaged.json"
# What describes the training rather than the model (its logs, summary and other checkpoints),
# and the token cache (corpus-sized; eval rebuilds it on demand): everything else at the top
# of the workdir (config.json, data_files.json, tokenizer/, ...) is copied, so a task that
# later saves more next to its model still finds it in the averaged workdir.
NOT_COPIED = {"checkpoints", BEST_DIR, DAMAGED_DIR, TOKENS_DIR, "tensorboard",
              "metrics.jsonl", SUMMARY_FILE, LOCK_FILE}


def default_out(workdir, last: int) -> str:
    """DIR_avgN beside DIR: not inside it, which would change the run being read."""
    return os.path.abspath(workdir).rstrip(os.sep) + f"_avg{last}"


def mean_params(trees):
    """The element-wise mean of (label, params) pairs of one layout. Floating leaves are summed
    in at least float32 (a bfloat16 running sum has 8 significant bits: small terms round away) and
    cast back to the first tree's dtype; other leaves are the first tree's."""
    first, treedef, total, n = None, None, None, 0
    for label, tree in trees:
        leaves, structure = jax.tree.flatten(tree)
        if first is None:
            first, treedef = leaves, structure
            total = [np.zeros(x.shape, np.promote_types(x.dtype, np.float32)) for x in leaves]
        elif structure != treedef or [x.shape for x in leaves] != [x.shape for x in first]:
            raise CheckpointMismatch(f"{label}: its parameters have another layout than the "
                                     "newest checkpoint's (was the model changed mid-run?)")
        for acc, x in zip(total, leaves):
            acc += np.asarray(x, acc.dtype)
        n += 1
    out = [(acc / n).astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
           for acc, x in zip(total, first)]
    return jax.tree.unflatten(treedef, out)


def _restore(manager, step, path, params_only: bool):
    """A checkpoint's state (or its params) as host numpy arrays, whatever mesh wrote it, and
    its data state."""
    try:
        tree = manager.item_metadata(step)["state"].tree
        if params_only:
            tree = {"params": tree["params"]}
        item = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), tree)
        restore_args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        items = dict(state=ocp.args.PyTreeRestore(item=item, restore_args=restore_args,
                                                  partial_restore=params_only))
        if not params_only:
            items["data"] = ocp.args.JsonRestore()
        restored = manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # noqa: BLE001 (orbax raises many types for unreadable files)
        raise CheckpointError(f"checkpoint {path} is damaged and cannot be read "
                              f"({short_error(e)}); nothing was written") from e
    return restored["state"], restored.get("data")


def average_checkpoints(workdir, last: int = 5, out=None) -> dict:
    """Writes the mean of the params of WORKDIR's `last` newest checkpoints as a new workdir
    `out` (default: default_out); returns what averaged.json records, plus `out`."""
    if last < 1:
        raise ValueError(f"--last={last}: must be >= 1")
    src = os.path.abspath(workdir)
    config = load_config(workdir)
    runner = TASK_RUNNERS.get(config.task.name, "gradient")
    if runner != "gradient":
        raise ValueError(f"--workdir={workdir}: a {runner} run (task {config.task.name!r}) has "
                         "no gradient-trained parameter checkpoints to average")
    dest = os.path.abspath(out or default_out(src, last))
    if dest == src or dest.startswith(src + os.sep):
        raise ValueError(f"--out={dest}: inside --workdir={src}, which average only reads")
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise FileExistsError(f"--out={dest} already exists and is not empty: give a new "
                              "directory (average never overwrites)")
    ckdir = os.path.join(src, "checkpoints")
    if not os.path.isdir(ckdir):
        raise FileNotFoundError(f"--workdir={workdir}: no {ckdir}: train first")
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # orbax warns that a read-only manager is read-only
    try:
        manager = ocp.CheckpointManager(ckdir, options=options, item_handlers={
            "state": ocp.PyTreeCheckpointHandler(), "data": ocp.JsonCheckpointHandler()})
    finally:
        logging.set_verbosity(verbosity)
    try:
        steps = sorted(manager.all_steps())
        if len(steps) < last:
            raise ValueError(f"--last={last}: {ckdir} holds {len(steps)} finished checkpoint(s) "
                             f"{steps}; averaging {last} needs a run with "
                             f"config.train.keep_checkpoints >= {last}")
        chosen = steps[-last:]
        path = lambda s: os.path.join(ckdir, str(s))
        state, data_state = _restore(manager, chosen[-1], path(chosen[-1]), params_only=False)

        def params():  # newest first, as it sets the layout; one checkpoint in memory at a time
            yield path(chosen[-1]), state["params"]
            for s in reversed(chosen[:-1]):
                yield path(s), _restore(manager, s, path(s), params_only=True)[0]["params"]

        state["params"] = mean_params(params())
    finally:
        manager.close()
    record = {"source": src, "steps": chosen, "step": chosen[-1],
              "created": datetime.datetime.now().isoformat(timespec="seconds")}
    _write_workdir(src, dest, chosen[-1], state, data_state, record)
    return {**record, "out": dest}


def _write_workdir(src, dest, step, state, data_state, record):
    """Builds the workdir beside `dest` and renames it into place once complete, so a failure
    leaves no half-written workdir (and a concurrent `average` to the same --out loses cleanly)."""
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(dest)}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        for name in sorted(os.listdir(src)):
            if name in NOT_COPIED or name.startswith("config.") and name != "config.json":
                continue  # config.<date>.json: configs the run replaced, not the model's
            s, d = os.path.join(src, name), os.path.join(tmp, name)
            shutil.copytree(s, d) if os.path.isdir(s) else shutil.copy2(s, d)
        ckpt = Checkpointer(os.path.join(tmp, "checkpoints"), keep=1)
        ckpt.save(step, state, data_state)
        ckpt.close()
        with open(os.path.join(tmp, REPORT_FILE), "w") as f:
            json.dump(record, f, indent=2)
        if os.path.isdir(dest):
            os.rmdir(dest)  # empty (checked before); fails, and says so, if something came in since
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
