"""llm_jax's jitted train step as the trainer builds it, for the benchmarks of every family.

Each benchmark times the step `python -m llm_jax train` would run (its schedule, its optimizer
with the model's parameter axes, its state spec on the mesh) on one random batch already in
memory, so the task is built without the corpus and tokenizer its constructor reads.
"""

import importlib.util
import time

import jax
import numpy as np
import optax
from flax import nnx

from llm_jax.training.optimizer import make_optimizer, make_schedule, model_param_axes
from llm_jax.training.sharding import batch_sharding, make_mesh
from llm_jax.training.state import make_state_spec
from llm_jax.training.steps import make_train_step


def load_path(name, path):
    """The module at `path` (benchmarks and configs are files, not packages)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def without_corpus(task_class, task_cfg):
    """A `task_class` whose loss and metrics work, without running its constructor (which reads
    the corpus and fits or loads a tokenizer)."""
    task = object.__new__(task_class)
    task.cfg = task_cfg
    return task


def trainer_step(cfg, task, batch):
    """(jitted step, state spec, lr schedule, `batch` placed on the mesh) for `cfg` and `task`."""
    mesh = make_mesh(cfg.mesh)
    total = cfg.train.steps
    schedule = make_schedule(cfg.optimizer, total)
    optimizer = make_optimizer(cfg.optimizer, total, param_axes=model_param_axes(cfg.model))
    spec = make_state_spec(cfg.model, optimizer, mesh, cfg.seed)
    step = make_train_step(task, spec, optimizer, schedule, mesh)
    return step, spec, schedule, jax.device_put(batch, batch_sharding(mesh))


def loss_and_grad_norm(task, graphdef, params, batch) -> dict:
    """The loss and gradient norm without dropout (no key), as a PyTorch model in eval() gives
    them: what each benchmark's parity check compares before timing anything."""
    def loss_fn(p, b):
        return task.loss(nnx.merge(graphdef, p), b)[0]
    loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params, batch)
    return {"loss": float(loss), "grad_norm": float(optax.tree.norm(grads))}


def host_params(state):
    """A host copy of the state's parameters, taken before the first step donates its buffers."""
    return jax.tree.map(np.asarray, state["params"])


def step_runner(step, state, batch):
    """Compile `step` (timed) and take one more step; returns (run(n), compile seconds, metrics
    of the first step)."""
    t = time.perf_counter()
    state, first = step(state, batch)  # compiles
    first = jax.device_get(first)
    compile_s = time.perf_counter() - t
    state, _ = step(state, batch)
    jax.block_until_ready(state)

    def run(n):
        nonlocal state
        for _ in range(n):
            state, m = step(state, batch)
        jax.block_until_ready((state, m))
    return run, compile_s, first
