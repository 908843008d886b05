"""Start a new run from another run's parameters (`config.init_from`): fine-tuning, growing a
model, or swapping a head.

Every parameter whose path and shape match is copied (cast to the new model's dtype); the rest
keep their fresh initialisation, and init_from.json in the new workdir lists which is which.
With `config.init_from_prefix` a source path P is matched to the target path PREFIX/P: a
pre-trained `bert` run's "embed/table" fills a fine-tuning model's "backbone/embed/table"
(models/finetune.py), and the head, outside the prefix, stays fresh.
The source is read without its config: the parameter tree comes from the checkpoint's own
Orbax metadata, and only the `params` subtree is restored, not the optimizer state.

With `config.init_from_model=True` the model itself comes from the source as well
(`model_from_init_from`): the section init_from_prefix fills (model.backbone for "backbone", the
whole model for "") is replaced by the source workdir's config.json `model`, keeping only the
run-time fields of MODEL_RUNTIME_FIELDS (dropout, dtype, remat) from the config; so a
fine-tuning config need not restate a published model's shape (import-hf of bert-base-uncased:
12 layers, 768 wide, ...), and every source tensor finds a target of its shape.
"""

import json
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from llm_jax.training.checkpoints import CheckpointError
from llm_jax.training.optimizer import path_str

REPORT_FILE = "init_from.json"
SOURCE_CONFIG = "config.json"  # training/experiment.py's CONFIG_FILE (which imports this module)
# what init_from_model keeps from the fine-tuning config: fields that change no tensor's shape
MODEL_RUNTIME_FIELDS = ("dropout_rate", "attention_dropout", "classifier_dropout", "dtype",
                        "param_dtype", "remat")


def _flat(tree) -> dict:
    return {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _cast_like(source, target):
    value = np.asarray(source).astype(target.dtype)
    if isinstance(target, jax.Array):  # keep the fresh state's placement (its sharding)
        return jax.device_put(value, target.sharding)
    return value


def normalise_prefix(prefix) -> str:
    """The prefix without slashes at its ends ("/backbone/" -> "backbone"); "" for none."""
    return str(prefix or "").strip("/")


def load_matching(target_params, source_params, prefix=""):
    """(params, report): `target_params` with every leaf of the same path and shape in
    `source_params` replaced by the source's value, cast to the target's dtype; with `prefix`,
    source path P is matched to target path PREFIX/P.

    Paths are "/"-joined keys, so a source restored with string keys ("cells/0") matches a
    target with integer ones. report = {"loaded": [path], "new": [path in the target only or
    of another shape], "left_out": [path in the source only, as the source names it],
    "mismatched": [(path, source shape, target shape)]}; the other lists hold target paths.
    """
    prefix = normalise_prefix(prefix)
    source = {f"{prefix}/{k}" if prefix else k: x for k, x in _flat(source_params).items()}
    leaves, treedef = jax.tree_util.tree_flatten_with_path(target_params)
    report = {"loaded": [], "new": [], "left_out": [], "mismatched": []}
    out = []
    for path, target in leaves:
        key = path_str(path)
        src = source.get(key)
        if src is not None and tuple(np.shape(src)) == tuple(np.shape(target)):
            out.append(_cast_like(src, target))
            report["loaded"].append(key)
            continue
        if src is not None:
            report["mismatched"].append((key, tuple(np.shape(src)), tuple(np.shape(target))))
        report["new"].append(key)
        out.append(target)
    targets = {path_str(p) for p, _ in leaves}
    cut = len(prefix) + 1 if prefix else 0
    report["left_out"] = [k[cut:] for k in source if k not in targets]
    return jax.tree_util.tree_unflatten(treedef, out), report


def _locate(path):
    """(checkpoints directory, step or None for the latest) of a workdir, checkpoints/ or
    checkpoints/<step> directory."""
    p = os.path.abspath(os.path.expanduser(str(path)))
    name = os.path.basename(p)
    if name.isdigit() and os.path.isdir(os.path.join(p, "state")):
        return os.path.dirname(p), int(name)
    for ckdir in (os.path.join(p, "checkpoints"), p):
        if os.path.isdir(ckdir) and any(n.isdigit() and os.path.isdir(os.path.join(ckdir, n, "state"))
                                        for n in os.listdir(ckdir)):
            return ckdir, None
    raise FileNotFoundError(
        f"init_from {path}: not a training workdir (holding checkpoints/<step>/state) or a "
        "checkpoint step directory (checkpoints/<step>)")


def read_source_params(path) -> dict:
    """The params subtree of the checkpoint at `path` (a workdir: its latest finished step;
    or a checkpoints/<step> directory), as a nested dict of numpy arrays."""
    ckdir, step = _locate(path)
    # A PyTree handler reads what Checkpointer's StandardSave wrote and can restore a subtree.
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    manager = ocp.CheckpointManager(ckdir, options=options, item_handlers={
        "state": ocp.PyTreeCheckpointHandler(), "data": ocp.JsonCheckpointHandler()})
    try:
        step = manager.latest_step() if step is None else step
        if step is None or step not in manager.all_steps():
            raise FileNotFoundError(f"init_from {path}: no finished checkpoint in {ckdir}")
        where = os.path.join(ckdir, str(step))
        try:
            tree = manager.item_metadata(step)["state"].tree
        except Exception as e:  # noqa: BLE001 (orbax raises many types for unreadable files)
            raise CheckpointError(f"init_from {where}: checkpoint cannot be read "
                                  f"({type(e).__name__}: {e})") from e
        if not isinstance(tree, dict) or "params" not in tree:
            raise CheckpointError(f"init_from {where}: the checkpoint holds no 'params' (keys: "
                                  f"{sorted(tree) if isinstance(tree, dict) else type(tree).__name__})")
        meta = tree["params"]
        item = {"params": jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), meta)}
        # restore_type=np.ndarray: whole arrays on the host, whatever mesh wrote them
        restore_args = {"params": jax.tree.map(
            lambda m: ocp.RestoreArgs(restore_type=np.ndarray), meta)}
        try:
            restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
                item=item, restore_args=restore_args, partial_restore=True)))
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"init_from {where}: parameters cannot be restored "
                                  f"({type(e).__name__}: {e})") from e
    finally:
        manager.close()
    return restored["state"]["params"]


def summary_line(report, source="", prefix="") -> str:
    def names(key, limit=3):
        items = [m[0] if isinstance(m, (tuple, list)) else m for m in report[key]]
        more = f", ... (+{len(items) - limit})" if len(items) > limit else ""
        return f" ({', '.join(items[:limit])}{more})" if items else ""

    total = len(report["loaded"]) + len(report["new"])
    src = f" from {source}" if source else ""
    if normalise_prefix(prefix):
        src += f" into {normalise_prefix(prefix)}/"
    return (f"init_from: loaded {len(report['loaded'])}/{total} parameters{src}; "
            f"{len(report['new'])} fresh{names('new')}, {len(report['mismatched'])} of another "
            f"shape{names('mismatched')}, {len(report['left_out'])} left out{names('left_out')}")


def write_report(report, workdir, source="", prefix="") -> str:
    """Writes WORKDIR/init_from.json (the report, its source, the prefix and a summary);
    returns the summary."""
    line = summary_line(report, source, prefix)
    doc = {"source": str(source), "prefix": normalise_prefix(prefix), "summary": line,
           **{k: report[k] for k in report}}
    doc["mismatched"] = [{"path": p, "source_shape": list(s), "target_shape": list(t)}
                         for p, s, t in report["mismatched"]]
    path = os.path.join(workdir, REPORT_FILE)
    with open(path + ".tmp", "w") as f:  # replaced only once complete
        json.dump(doc, f, indent=2)
    os.replace(path + ".tmp", path)
    return line


def init_state_from(state: dict, source, workdir, prefix="") -> dict:
    """A fresh train state with its params loaded from `source` where they match (see
    load_matching; `prefix`: config.init_from_prefix); writes the report and prints its summary.

    The optimizer state is kept: AdamW/SGD state (zero moments, a zero count) does not depend
    on the parameters' values.
    """
    prefix = normalise_prefix(prefix)
    params, report = load_matching(state["params"], read_source_params(source), prefix)
    if not report["loaded"]:
        into = f" under config.init_from_prefix={prefix!r}" if prefix else ""
        raise ValueError(f"config.init_from={source!r}: no parameter matches the model by path "
                         f"and shape{into} (source has {report['left_out'][:3]}..., model has "
                         f"{report['new'][:3]}...)")
    print(write_report(report, workdir, source, prefix), flush=True)
    return {**state, "params": params}


def source_config_path(init_from) -> str:
    """WORKDIR/config.json of an init_from path (a workdir, its checkpoints/ or a step dir)."""
    ckdir, _ = _locate(init_from)
    workdir = os.path.dirname(ckdir) if os.path.basename(ckdir) == "checkpoints" else ckdir
    return os.path.join(workdir, SOURCE_CONFIG)


def model_from_init_from(config):
    """`config` with the model section named by init_from_prefix taken from init_from's
    config.json (a copy; `config` itself when config.init_from_model is off): see the module
    docstring. Idempotent, so the command and the trainer may both call it."""
    if not config.get("init_from_model", False) or not config.get("init_from"):
        return config  # without init_from, check_config names the missing field
    where = f"config.init_from_model=True with config.init_from={config.init_from!r}"
    prefix = normalise_prefix(config.get("init_from_prefix", ""))
    if prefix not in ("", "backbone"):
        raise ValueError(f"{where}: config.init_from_prefix={prefix!r}; it reads the model into "
                         "'backbone' (model.backbone) or '' (model)")
    path = source_config_path(config.init_from)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: {path} not found (a training run's or import-hf's "
                                "workdir has one); set config.init_from_model=False and give "
                                "the model's shape in the config")
    with open(path) as f:
        source = json.load(f).get("model", {})
    out = ml_collections.ConfigDict(config.to_dict())
    target = out.model.backbone if prefix else out.model
    section = "config.model.backbone" if prefix else "config.model"
    if source.get("name") != target.get("name"):
        raise ValueError(f"{where}: {path} has model.name={source.get('name')!r}, "
                         f"{section}.name={target.get('name')!r}: use a config built for "
                         "that family")
    model = {**source, **{k: target[k] for k in MODEL_RUNTIME_FIELDS if k in target and k in source}}
    with out.unlocked():
        if prefix:
            out.model.backbone = ml_collections.ConfigDict(model)
        else:
            out.model = ml_collections.ConfigDict(model)
    if config.is_locked:
        out.lock()
    return out
