"""Character-level token encoder (Kim et al. 2016; ELMo's token layer).

chars [.., C] -> char embeddings [.., C, E] -> for each (width w, n filters): a 1-D
convolution over the characters, max over positions, activation -> concatenated [.., sum n]
-> highway layers -> linear projection [.., out_dim].
"""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax.data.chars import NUM_CHAR_IDS, PAD
from llm_jax.layers.params import dense, normal, param, zeros

ACTIVATIONS = {"relu": jax.nn.relu, "tanh": jnp.tanh}


class Highway(nnx.Module):
    """y = g * relu(W_h x) + (1 - g) * x, g = sigmoid(W_g x); the gate bias starts negative
    (Srivastava et al.) so that each layer begins close to the identity."""

    def __init__(self, dim, num_layers, *, gate_bias=-2.0, dtype=jnp.float32,
                 param_dtype=jnp.float32, rngs):
        self.dtype = dtype
        std = dim ** -0.5
        self.kernels = nnx.List([param(normal(std), rngs.params(), (dim, 2 * dim), ("mlp", "embed"),
                                       param_dtype) for _ in range(num_layers)])
        init_bias = lambda k, s, d: jnp.concatenate(  # noqa: E731
            [jnp.zeros((dim,), d), jnp.full((dim,), gate_bias, d)])
        self.biases = nnx.List([param(init_bias, None, (2 * dim,), ("embed",), param_dtype)
                                for _ in range(num_layers)])

    def __call__(self, x):
        for kernel, bias in zip(self.kernels, self.biases):
            h, g = jnp.split(dense(x, kernel[...].astype(self.dtype)) + bias[...].astype(self.dtype),
                             2, axis=-1)
            g = jax.nn.sigmoid(g)
            x = g * jax.nn.relu(h) + (1.0 - g) * x
        return x


class CharCNN(nnx.Module):
    """Token vectors from character ids: int32[..., max_chars] -> float[..., out_dim].

    `filters` is a sequence of (width, num_filters). Padding characters embed to zeros (as in
    ELMo); an all-padding (absent) token gives a finite vector that callers mask out.
    """

    def __init__(self, *, filters, char_dim=16, num_highway=2, out_dim=128, activation="relu",
                 num_chars=NUM_CHAR_IDS, dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.char_activation={activation!r}: expected one of "
                             f"{sorted(ACTIVATIONS)}")
        filters = [tuple(int(v) for v in f) for f in filters]
        if not filters or any(len(f) != 2 or min(f) < 1 for f in filters):
            raise ValueError(f"model.char_filters={filters!r}: expected (width, count) pairs >= 1")
        self.filters, self.activation, self.dtype = filters, activation, dtype
        self.char_embed = param(normal(1.0), rngs.params(), (num_chars, char_dim),
                                ("vocab", "embed"), param_dtype)
        self.conv_kernels = nnx.List([
            param(normal((w * char_dim) ** -0.5), rngs.params(), (w, char_dim, n),
                  ("kv", "embed", "mlp"), param_dtype) for w, n in filters])
        self.conv_biases = nnx.List([param(zeros, None, (n,), ("mlp",), param_dtype)
                                     for _, n in filters])
        total = sum(n for _, n in filters)
        self.total_filters = total
        self.highway = Highway(total, num_highway, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.proj = param(normal(total ** -0.5), rngs.params(), (total, out_dim), ("mlp", "embed"),
                          param_dtype)
        self.proj_bias = param(zeros, None, (out_dim,), ("embed",), param_dtype)

    def __call__(self, chars):
        lead, C = chars.shape[:-1], chars.shape[-1]
        if any(w > C for w, _ in self.filters):
            raise ValueError(f"max_chars={C} is shorter than the widest char filter "
                             f"{max(w for w, _ in self.filters)}")
        if chars.size == 0:  # no tokens (e.g. an empty sentence): nothing to convolve
            return jnp.zeros((*lead, self.proj.shape[1]), self.dtype)
        chars = chars.reshape(-1, C)
        emb = jnp.take(self.char_embed[...], chars, axis=0).astype(self.dtype)
        emb = jnp.where((chars != PAD)[..., None], emb, 0.0)  # [N, C, E]
        act = ACTIVATIONS[self.activation]
        pooled = []
        for (w, _), kernel, bias in zip(self.filters, self.conv_kernels, self.conv_biases):
            # A width-w convolution as one matmul over the w shifted copies of the sequence.
            windows = jnp.stack([emb[:, i:C - w + 1 + i] for i in range(w)], axis=2)  # [N,P,w,E]
            conv = dense(windows, kernel[...].astype(self.dtype), in_dims=2)  # [N, P, n]
            pooled.append(act(jnp.max(conv, axis=1) + bias[...].astype(self.dtype)))
        x = self.highway(jnp.concatenate(pooled, axis=-1))
        x = dense(x, self.proj[...].astype(self.dtype)) + self.proj_bias[...].astype(self.dtype)
        return x.reshape(*lead, -1)
