"""Mixed precision: model.dtype="bfloat16" with param_dtype="float32" against float32.

A 2-layer, 64-wide GPT trains 200 steps (batch 8 x 32 tokens) twice from the same seed on the
same batches, once in float32 and once with bfloat16 activations, through the trainer's own
make_state_spec / make_optimizer / make_train_step. The data is a first-order Markov chain
over 64 tokens (three successors per token, p = 0.6 / 0.3 / 0.1): an entropy of 0.898 nats,
which both runs reach within the 200 steps, so the curves compare converged models rather than
two trajectories through a plateau (on Tiny Shakespeare chars at this size the step at which a
run leaves the ~2.5 plateau moves with any perturbation: seed 2 put float32 and bfloat16 about
0.05 apart, seeds 0 and 1 about 0.005, which says nothing about precision).

Tolerance. Measured on this CPU over seeds 0-4: |final loss difference| <= 8.2e-4, mean
|difference| over the last 50 steps <= 4.5e-4, 2.2e-3 at most at any step (seed 0, used here:
5.3e-4, 3.5e-4, 1.5e-3), against a batch-to-batch loss std of 0.045-0.054 and final losses of
0.93-1.07. LOSS_TOL = 0.01 for both is 12x and 22x the worst seed, and 1% of the loss: room for
another XLA version or CPU, or for bfloat16 rounding that XLA:CPU evidently skips (it seems to
do elementwise bfloat16 math in float32); a bfloat16 path that trains 1% worse fails. That same
leniency means the curves alone miss precision bugs on CPU: bfloat16 layer-norm statistics,
softmax or cross-entropy, patched in, left the last-50 gap at 3.5e-4, 3.5e-4 and 6.9e-4. So the
traced train step is checked as well (each of those three fails it, and so does a bias or
position-embedding gradient summed in bfloat16, as the layers had it before add_f32):
bfloat16 matmuls; float32 exp/log/rsqrt/max (softmax, log-softmax, norm statistics); no
bfloat16 sums; float32 parameters, Adam moments and gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.tasks.causal_lm import lm_loss
from llm_jax.training.config_schema import default_config
from llm_jax.training.optimizer import make_optimizer, make_schedule, model_param_axes
from llm_jax.training.sharding import make_mesh
from llm_jax.training.state import make_state_spec
from llm_jax.training.steps import make_train_step

STEPS, BATCH, SEQ, VOCAB, SEED = 200, 8, 32, 64, 0
ENTROPY = -sum(p * np.log(p) for p in (0.6, 0.3, 0.1))  # 0.898 nats per token
LOSS_TOL = 0.01  # see the module docstring for how it was chosen


class MarkovLM:
    """CausalLM.loss without a corpus: logits of the model against the next tokens."""

    def loss(self, model, batch, dropout_key=None):
        return lm_loss(model(batch["inputs"], dropout_key=dropout_key), batch["targets"])


def markov_batches(seed=SEED):
    rng = np.random.default_rng(seed)
    successors = rng.integers(VOCAB, size=(VOCAB, 3))
    n = STEPS * BATCH * (SEQ + 1)
    choice = rng.choice(3, size=n, p=(0.6, 0.3, 0.1))
    stream = np.empty(n, np.int32)
    stream[0] = 0
    for i in range(1, n):
        stream[i] = successors[stream[i - 1], choice[i]]
    windows = stream.reshape(STEPS, BATCH, SEQ + 1)
    return [{"inputs": jnp.asarray(w[:, :-1]), "targets": jnp.asarray(w[:, 1:])} for w in windows]


def config(dtype):
    c = default_config("gpt")
    c.model.update(num_layers=2, num_heads=2, embed_dim=64, max_len=SEQ, vocab_size=VOCAB,
                   dtype=dtype, param_dtype="float32")
    c.optimizer.update(lr=3e-3, min_lr=3e-4, warmup_steps=10)
    return c


def train(dtype, batches):
    c = config(dtype)
    mesh = make_mesh(c.mesh)
    optimizer = make_optimizer(c.optimizer, STEPS, param_axes=model_param_axes(c.model))
    spec = make_state_spec(c.model, optimizer, mesh, SEED)
    task = MarkovLM()
    step = make_train_step(task, spec, optimizer, make_schedule(c.optimizer, STEPS), mesh)
    state = spec.init()
    jaxpr = jax.make_jaxpr(step)(state, batches[0])
    grads = jax.eval_shape(jax.grad(lambda p: task.loss(nnx.merge(spec.graphdef, p),
                                                        batches[0])[0]), state["params"])
    losses = []
    for batch in batches:
        state, metrics = step(state, batch)
        losses.append(metrics["loss"])
    return {"losses": np.asarray(jax.device_get(losses), np.float64), "state": state,
            "loss_dtype": metrics["loss"].dtype, "jaxpr": jaxpr, "grads": grads}


@pytest.fixture(scope="module")
def runs():
    batches = markov_batches()
    return {dtype: train(dtype, batches) for dtype in ("float32", "bfloat16")}


def float_dtypes(tree):
    return {str(x.dtype) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_parameters_adam_moments_and_gradients_stay_float32(runs, dtype):
    run = runs[dtype]
    assert float_dtypes(run["state"]["params"]) == {"float32"}
    assert float_dtypes(run["state"]["opt_state"]) == {"float32"}  # mu and nu
    # gradients, and so the grad_accum sums started from zeros_like(gradients), are float32
    assert float_dtypes(run["grads"]) == {"float32"}
    assert run["loss_dtype"] == jnp.float32


def test_bfloat16_loss_curve_tracks_float32(runs):
    f32, bf16 = runs["float32"]["losses"], runs["bfloat16"]["losses"]
    assert np.isfinite(bf16).all()
    for losses in (f32, bf16):  # both learn the chain: from ln 64 = 4.16 to near its entropy
        assert losses[0] > 4.0 and losses[-50:].mean() < ENTROPY + 0.15
    diff = np.abs(bf16 - f32)
    assert diff.max() > 0, "bfloat16 gave float32's losses bit for bit: is model.dtype used?"
    assert diff[-1] < LOSS_TOL, f"final loss: float32 {f32[-1]:.4f}, bfloat16 {bf16[-1]:.4f}"
    assert diff[-50:].mean() < LOSS_TOL, f"mean |difference| over the last 50 steps {diff[-50:].mean():.4f}"


def equations(jaxpr):
    """Every equation of a jaxpr and of the jaxprs inside it (jit, scan, cond, remat)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    yield from equations(sub)


def test_bfloat16_step_runs_matmuls_in_bfloat16_and_statistics_in_float32(runs):
    eqns = list(equations(runs["bfloat16"]["jaxpr"].jaxpr))
    in_dtypes = lambda e: {str(v.aval.dtype) for v in e.invars if hasattr(v.aval, "dtype")}  # noqa: E731
    dots = [e for e in eqns if e.primitive.name == "dot_general"]
    # Projections, MLP, attention scores and values, logits and their gradients: bfloat16 x
    # bfloat16, but for the four attention-gradient dots that read the float32 cotangent of the
    # float32 softmax (bfloat16 x float32). No matmul is float32 throughout.
    bf16_dots = [e for e in dots if in_dtypes(e) == {"bfloat16"}]
    assert len(bf16_dots) >= 15 and all("bfloat16" in in_dtypes(e) for e in dots), \
        sorted((e.primitive.name, *in_dtypes(e)) for e in dots)
    # softmax (attention), log-softmax (loss), layer-norm statistics; and the loss is float32
    stats = [e for e in eqns if e.primitive.name in ("exp", "log", "log1p", "rsqrt", "reduce_max")]
    assert stats and all(in_dtypes(e) == {"float32"} for e in stats), \
        sorted({(e.primitive.name, *in_dtypes(e)) for e in stats})
    # A bias or position-embedding gradient is a sum over batch x time: never in bfloat16.
    sums = [e for e in eqns if e.primitive.name == "reduce_sum"]
    bf16_sums = [e.invars[0].aval.shape for e in sums if "bfloat16" in in_dtypes(e)]
    assert not bf16_sums, f"bfloat16 sums of shapes {bf16_sums}"
    # bfloat16 is really in effect in the bfloat16 run, and absent from the float32 one
    f32_eqns = equations(runs["float32"]["jaxpr"].jaxpr)
    assert not [e for e in f32_eqns if "bfloat16" in in_dtypes(e)]
