"""The train state {params, opt_state, step, rng[, carry]} as plain pytrees, and where each leaf lives.

`carry` is there only for tasks that carry a state from batch to batch (truncated BPTT, see
tasks/stream_lm.py); keeping it in the train state is what puts it in the checkpoint.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from llm_jax.models import build_model
from llm_jax.training import sharding
from llm_jax.training.optimizer import opt_state_shardings


@dataclasses.dataclass
class StateSpec:
    graphdef: nnx.GraphDef   # the model's structure; nnx.merge(graphdef, params) rebuilds it
    abstract: dict           # ShapeDtypeStructs (with shardings) of the train state
    shardings: dict          # NamedShardings of the train state
    init: callable           # () -> a freshly initialised train state, already sharded

    @property
    def param_count(self) -> int:
        return sum(x.size for x in jax.tree.leaves(self.abstract["params"]))


def make_state_spec(model_cfg, optimizer: optax.GradientTransformation, mesh, seed: int,
                    carry_fn=None):
    """`carry_fn(model)`, when given, makes the initial carry (leaves [batch, ...])."""
    def build():
        return build_model(model_cfg, rngs=nnx.Rngs(params=seed))

    abstract_model = nnx.eval_shape(build)
    graphdef, abstract_vars = nnx.split(abstract_model)
    abstract_params = nnx.to_pure_dict(abstract_vars)
    logical = nnx.to_pure_dict(nnx.get_partition_spec(abstract_vars))
    param_sh = sharding.tree_shardings(logical, abstract_params, mesh)
    abstract_opt = jax.eval_shape(optimizer.init, abstract_params)
    opt_sh = opt_state_shardings(optimizer, abstract_opt, param_sh, sharding.replicated(mesh))
    rep = sharding.replicated(mesh)
    shardings = {"params": param_sh, "opt_state": opt_sh, "step": rep, "rng": rep}
    if carry_fn is not None:
        abstract_carry = jax.eval_shape(lambda: carry_fn(build()))
        shardings["carry"] = jax.tree.map(lambda _: sharding.batch_sharding(mesh), abstract_carry)

    def init():
        model = build()
        params = nnx.to_pure_dict(nnx.state(model))
        state = {"params": params, "opt_state": optimizer.init(params),
                 "step": jnp.zeros((), jnp.int32),
                 "rng": jax.random.key_data(jax.random.key(seed + 1))}
        if carry_fn is not None:
            state["carry"] = carry_fn(model)
        return state

    abstract = jax.eval_shape(init)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, shardings)
    return StateSpec(graphdef, abstract, shardings,
                     jax.jit(init, out_shardings=shardings))
