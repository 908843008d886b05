"""Everything a run needs, built from its config: mesh, task, state layout, checkpoints."""

import datetime
import json
import math
import os

import jax
import ml_collections

from llm_jax.tasks import build_task
from llm_jax.tasks.protocols import CarryTask
from llm_jax.training import sharding
from llm_jax.training.checkpoints import Checkpointer, CheckpointMismatch
from llm_jax.training.init_from import init_state_from
from llm_jax.training.optimizer import make_optimizer, make_schedule, model_param_axes
from llm_jax.training.state import make_state_spec

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"  # every runner writes it last, once the run has finished


def load_config(workdir) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} the workdir of a training run "
                                "(python -m llm_jax train --workdir=...)?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def save_config(config, workdir):
    """Writes the resolved config; a different one already there is kept under a dated name."""
    path = os.path.join(workdir, CONFIG_FILE)
    text = config.to_json_best_effort(indent=2, sort_keys=True)
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        if old == text:
            return
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        os.replace(path, os.path.join(workdir, f"config.{stamp}.json"))
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def config_diff(old, new, limit=6) -> str:
    """`field (old -> new)` for every dotted field whose value differs, on one line."""
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v
    a = dict(flat(json.loads(old.to_json_best_effort())))
    b = dict(flat(json.loads(new.to_json_best_effort())))
    items = [f"{k} ({a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r})"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    more = f", and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


class Experiment:
    def __init__(self, config, workdir: str, *, devices=None):
        os.makedirs(workdir, exist_ok=True)
        self.config = config = ml_collections.ConfigDict(config.to_dict())
        self.workdir = workdir
        self.mesh = sharding.make_mesh(config.mesh, devices)
        self.task = build_task(config, workdir)
        with config.unlocked():
            vocab = self.task.vocab_size
            if not config.model.vocab_size:
                config.model.vocab_size = vocab
            elif config.model.vocab_size < vocab:
                raise ValueError(f"config.model.vocab_size={config.model.vocab_size} is smaller "
                                 f"than the tokenizer's vocabulary ({vocab})")
        self.steps_per_epoch = 0
        if config.train.epochs > 0 or config.optimizer.schedule == "epoch_decay":
            self.steps_per_epoch = self.task.train_batches(config.train.batch_size,
                                                           config.seed).steps_per_epoch
        if config.train.epochs > 0:
            with config.unlocked():
                config.train.steps = math.ceil(config.train.epochs * self.steps_per_epoch)
        steps = config.train.steps
        self.schedule = make_schedule(config.optimizer, steps, self.steps_per_epoch)
        self.optimizer = make_optimizer(config.optimizer, steps, self.steps_per_epoch,
                                        param_axes=model_param_axes(config.model))
        carry_fn = None
        if isinstance(self.task, CarryTask):  # truncated BPTT: the carry lives in the train state
            batch_size = config.train.batch_size
            carry_fn = lambda model: self.task.initial_carry(model, batch_size)  # noqa: E731
        self.spec = make_state_spec(config.model, self.optimizer, self.mesh, config.seed,
                                    carry_fn=carry_fn)
        self.checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                                         keep=config.train.keep_checkpoints)

    def initial_state(self):
        """(state, data_state): restored from the latest checkpoint, or freshly initialised
        (with `config.init_from`'s matching parameters, on a fresh start only)."""
        if self.checkpointer.latest_step() is not None:
            try:
                return self.checkpointer.restore(self.spec.abstract, move_damaged=True)
            except CheckpointMismatch as e:
                stored = os.path.join(self.workdir, CONFIG_FILE)
                diff = config_diff(load_config(self.workdir), self.config) if os.path.exists(stored) else ""
                fields = f"; config fields that differ from config.json: {diff}" if diff else ""
                raise CheckpointMismatch(f"{e}{fields}; nothing in {self.workdir} was changed") from None
        state = self.spec.init()
        if self.config.init_from:
            state = init_state_from(state, self.config.init_from, self.workdir,
                                    prefix=self.config.get("init_from_prefix", ""))
        return state, None

    def put_batch(self, batch):
        return jax.device_put(batch, sharding.batch_sharding(self.mesh))
