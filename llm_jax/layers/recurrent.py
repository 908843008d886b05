"""Recurrent cells (LSTM, GRU, Elman RNN) and a scanned driver over time.

Every cell splits its step in two: `project_inputs` (the input half of the gates, x @ W + b) and
`recur` (the recurrent half and the nonlinearity). `run_cell` projects the inputs of all time
steps in one [B*T, D] x [D, G] matmul before the scan, so the scanned body only does the small
[B, H] x [H, G] recurrent matmul; that is most of the speed of a cuDNN-style RNN.

Conventions: gate kernels are fused ([in, 4H] for LSTM in the order i, f, g, o; [in, 3H] for
GRU in the order r, z, n). `init_scale=None` uses the PyTorch default (uniform +-1/sqrt(H) on
every parameter); a float s uses uniform +-s on the kernels and zero biases, as TensorFlow's
ptb_word_lm (Zaremba et al. 2014) does.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax.layers.params import dense, param, uniform

CELL_KINDS = ("lstm", "gru", "rnn")



def _initializers(init_scale, hidden_dim):
    """(kernel init, bias init) for a cell."""
    if init_scale is None:
        s = 1.0 / float(hidden_dim) ** 0.5
        return uniform(s), uniform(s)
    return uniform(float(init_scale)), nnx.initializers.zeros


class _Cell(nnx.Module):
    """Shared parts: fused input kernel and bias, recurrent kernel, input projection."""

    n_gates: int

    def _make(self, in_dim, hidden_dim, rec_in_dim, init_scale, dtype, param_dtype, rngs):
        self.in_dim, self.hidden_dim, self.dtype = in_dim, hidden_dim, dtype
        k_init, b_init = _initializers(init_scale, hidden_dim)
        g = self.n_gates * hidden_dim
        self.w_in = param(k_init, rngs.params(), (in_dim, g), ("embed", "mlp"), param_dtype)
        self.b_in = param(b_init, rngs.params(), (g,), ("mlp",), param_dtype)
        self.w_rec = param(k_init, rngs.params(), (rec_in_dim, g), (None, "mlp"), param_dtype)
        return k_init, b_init

    def project_inputs(self, x):
        """x[..., D] -> the input half of the gate pre-activations, [..., G]."""
        return dense(x.astype(self.dtype), self.w_in[...].astype(self.dtype)) \
            + self.b_in[...].astype(self.dtype)

    def _rec(self, h):
        return h @ self.w_rec[...].astype(self.dtype)

    def __call__(self, carry, x_BD):
        return self.recur(carry, self.project_inputs(x_BD))


class LSTMCell(_Cell):
    """LSTM (Hochreiter & Schmidhuber 1997, forget gate of Gers et al. 2000).

    With `proj_dim` the output h is projected to proj_dim and that projection is what recurs
    (the LSTMP of Sak et al. 2014, used by ELMo); `cell_clip` / `proj_clip` clip c / h.
    Carry is (c_BH, h_BP) with P = proj_dim or hidden_dim.
    """

    n_gates = 4

    def __init__(self, in_dim, hidden_dim, *, rngs, init_scale=None, proj_dim=None, cell_clip=None,
                 proj_clip=None, forget_bias=0.0, dtype=jnp.float32, param_dtype=jnp.float32):
        self.out_dim = proj_dim or hidden_dim
        k_init, _ = self._make(in_dim, hidden_dim, self.out_dim, init_scale, dtype, param_dtype, rngs)
        self.w_proj = (param(k_init, rngs.params(), (hidden_dim, proj_dim), ("mlp", "embed"),
                             param_dtype) if proj_dim else None)
        self.cell_clip, self.proj_clip, self.forget_bias = cell_clip, proj_clip, forget_bias

    def initial_carry(self, batch_size):
        return (jnp.zeros((batch_size, self.hidden_dim), self.dtype),
                jnp.zeros((batch_size, self.out_dim), self.dtype))

    def recur(self, carry, xg_BG):
        c, h = carry
        gates = xg_BG + self._rec(h)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f + self.forget_bias) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        if self.cell_clip:
            c = jnp.clip(c, -self.cell_clip, self.cell_clip)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        if self.w_proj is not None:
            h = h @ self.w_proj[...].astype(self.dtype)
            if self.proj_clip:
                h = jnp.clip(h, -self.proj_clip, self.proj_clip)
        return (c, h), h


class GRUCell(_Cell):
    """GRU (Cho et al. 2014) as cuDNN / PyTorch compute it: the reset gate multiplies the
    recurrent half of the candidate *after* its bias, h' = (1 - z) * n + z * h."""

    n_gates = 3

    def __init__(self, in_dim, hidden_dim, *, rngs, init_scale=None, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        self.out_dim = hidden_dim
        _, b_init = self._make(in_dim, hidden_dim, hidden_dim, init_scale, dtype, param_dtype, rngs)
        self.b_rec = param(b_init, rngs.params(), (3 * hidden_dim,), ("mlp",), param_dtype)

    def initial_carry(self, batch_size):
        return jnp.zeros((batch_size, self.hidden_dim), self.dtype)

    def recur(self, h, xg_BG):
        hg = self._rec(h) + self.b_rec[...].astype(self.dtype)
        xr, xz, xn = jnp.split(xg_BG, 3, axis=-1)
        hr, hz, hn = jnp.split(hg, 3, axis=-1)
        r = jax.nn.sigmoid(xr + hr)
        z = jax.nn.sigmoid(xz + hz)
        n = jnp.tanh(xn + r * hn)
        h = (1.0 - z) * n + z * h
        return h, h


class SimpleRNNCell(_Cell):
    """Elman RNN: h' = tanh(x W + b + h U)."""

    n_gates = 1

    def __init__(self, in_dim, hidden_dim, *, rngs, init_scale=None, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        self.out_dim = hidden_dim
        self._make(in_dim, hidden_dim, hidden_dim, init_scale, dtype, param_dtype, rngs)

    def initial_carry(self, batch_size):
        return jnp.zeros((batch_size, self.hidden_dim), self.dtype)

    def recur(self, h, xg_BG):
        h = jnp.tanh(xg_BG + self._rec(h))
        return h, h


CELLS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": SimpleRNNCell}


def make_cell(kind: str, in_dim, hidden_dim, *, rngs, field: str = "config.model.cell", **kwargs):
    """A cell by name; options a cell does not take (proj_dim, cell_clip for GRU/RNN) must be unset."""
    if kind not in CELLS:
        raise ValueError(f"{field}={kind!r}: expected one of {', '.join(map(repr, CELL_KINDS))}")
    if kind != "lstm":
        for name in ("proj_dim", "cell_clip", "proj_clip", "forget_bias"):
            if kwargs.pop(name, None):
                raise ValueError(f"{field}={kind!r} does not take {name} (only 'lstm' does)")
    return CELLS[kind](in_dim, hidden_dim, rngs=rngs, **kwargs)


def run_cell(cell, carry, x_BTD, *, reverse: bool = False, mask_BT=None, unroll: int | bool = 1):
    """Runs `cell` over the time axis with lax.scan -> (final carry, y_BTH).

    With `mask_BT` (1 = real token), masked steps leave the carry unchanged and output zeros,
    so right-padded sequences end with the carry of their last real token, and with
    `reverse=True` the backward pass starts at each sequence's last real token. `unroll` is
    lax.scan's: unrolling a short window lets XLA fuse across steps.
    """
    xg_TBG = jnp.swapaxes(cell.project_inputs(x_BTD), 0, 1)

    if mask_BT is None:
        def step(c, xg):
            return cell.recur(c, xg)
        carry, y_TBH = jax.lax.scan(step, carry, xg_TBG, reverse=reverse, unroll=unroll)
    else:
        m_TB1 = jnp.swapaxes(mask_BT, 0, 1)[..., None].astype(bool)

        def step(c, inputs):
            xg, m = inputs
            new_c, y = cell.recur(c, xg)
            new_c = jax.tree.map(lambda n, o: jnp.where(m, n, o), new_c, c)
            return new_c, jnp.where(m, y, jnp.zeros_like(y))
        carry, y_TBH = jax.lax.scan(step, carry, (xg_TBG, m_TB1), reverse=reverse,
                                     unroll=unroll)
    return carry, jnp.swapaxes(y_TBH, 0, 1)
