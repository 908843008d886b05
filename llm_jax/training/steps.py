"""The jit-compiled train and eval steps: pure (state, batch) -> (state, metrics).

The train step returns each task metric as its mean over the batch (plus grad_norm, lr and the
non-finite code that training/guards.py checks);
the eval step returns the task's (sum, weight) pairs untouched, for the caller to add up
over the split (tasks/protocols.py). For a CarryTask (tasks/stream_lm.py) the train state
holds `carry`, which each step feeds to the task and replaces with the one it returns; the
eval step is then (params, carry, batch) -> (metrics, carry).
"""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from llm_jax.tasks.protocols import CarryTask, metric_means
from llm_jax.training.guards import nonfinite_code
from llm_jax.training.sharding import batch_sharding, replicated

NONFINITE = "nonfinite"  # the train step's code for the guard (training/guards.py), not logged


def has_carry(task) -> bool:
    return isinstance(task, CarryTask)


def make_train_step(task, spec, optimizer, schedule, mesh, *, grad_accum: int = 1):
    carried = "carry" in spec.shardings
    if carried and grad_accum != 1:
        raise ValueError(f"config.train.grad_accum={grad_accum}: a task that carries a state "
                         "between batches needs grad_accum=1")

    def loss_fn(params, batch, key):
        return task.loss(nnx.merge(spec.graphdef, params), batch, key)

    def carry_loss_fn(params, carry, batch, key):
        return task.carry_loss(nnx.merge(spec.graphdef, params), carry, batch, key)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    carry_grad_fn = jax.value_and_grad(carry_loss_fn, has_aux=True)

    def step_fn(state, batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
        new_carry = None
        if carried:
            (loss, (metrics, new_carry)), grads = carry_grad_fn(state["params"], state["carry"],
                                                                batch, key)
        elif grad_accum == 1:
            (loss, metrics), grads = grad_fn(state["params"], batch, key)
        else:
            # Micro-batches run one after another and their gradients are averaged, so the
            # update equals one step on the whole batch (up to float rounding); metric sums
            # and weights add up, so the metrics are exactly the whole batch's.
            micro = jax.tree.map(
                lambda x: x.reshape(grad_accum, x.shape[0] // grad_accum, *x.shape[1:]), batch)

            def accumulate(carry, mb_and_index):
                mb, i = mb_and_index
                (mb_loss, m), g = grad_fn(state["params"], mb, jax.random.fold_in(key, i))
                return jax.tree.map(jnp.add, carry, (g, m, mb_loss)), None

            (loss_shape, metric_shapes), grad_shapes = jax.eval_shape(
                grad_fn, state["params"], jax.tree.map(lambda x: x[0], micro), key)
            zeros = jax.tree.map(jnp.zeros_like, (grad_shapes, metric_shapes, loss_shape))
            (grads, metrics, loss), _ = jax.lax.scan(accumulate, zeros,
                                                     (micro, jnp.arange(grad_accum)))
            grads = jax.tree.map(lambda x: x / grad_accum, grads)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        grad_norm = optax.tree.norm(grads)
        metrics = {**metric_means(metrics), "grad_norm": grad_norm, "lr": schedule(state["step"]),
                   NONFINITE: nonfinite_code(loss, grad_norm)}
        new_state = {"params": params, "opt_state": opt_state,
                     "step": state["step"] + 1, "rng": state["rng"]}
        if carried:
            new_state["carry"] = new_carry
        return new_state, metrics

    return jax.jit(step_fn, in_shardings=(spec.shardings, batch_sharding(mesh)),
                   out_shardings=(spec.shardings, replicated(mesh)), donate_argnums=0)


def make_eval_step(task, spec, mesh):
    if has_carry(task):
        def carry_eval_fn(params, carry, batch):
            return task.carry_loss(nnx.merge(spec.graphdef, params), carry, batch, None)[1]

        # The carry's batch size is the eval batch size, which may differ from training's; it
        # is left where jit puts it, and None (a zero state) on the first call.
        return jax.jit(carry_eval_fn, in_shardings=(spec.shardings["params"], None,
                                                    batch_sharding(mesh)))

    def eval_fn(params, batch):
        return task.loss(nnx.merge(spec.graphdef, params), batch, None)[1]

    return jax.jit(eval_fn, in_shardings=(spec.shardings["params"], batch_sharding(mesh)),
                   out_shardings=replicated(mesh))
