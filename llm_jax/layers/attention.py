"""Multi-head attention, self or cross, with a KV cache (the math is in ops.attention).

Masks and biases come from the model (padding, segments, relative position bias); only the
causal mask is built here, because with a cache its offset is the cache index.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.params import add_f32, dense, normal, param, zeros


class Attention(nnx.Module):
    """Self-attention (`cross=False`) or cross-attention (`cross=True`).

    Self-attention keeps one fused q/k/v projection `qkv` [dim, 3, H, D]: one matmul instead
    of three is faster on CPU. Cross-attention has `q` [dim, H, D] and `kv` [kv_dim, 2, H, D],
    so that keys/values of the encoder output are projected once and reused every step.

    Caches are plain dicts, passed in and returned, so decoding stays a pure function:
      self:  {"k": [B, S_max, H, D], "v": [B, S_max, H, D], "index": int32[]} grows by T per
             call (`init_cache`); needs `causal=True`, as unfilled slots must stay unseen.
      cross: {"k": [B, S_enc, H, D], "v": [B, S_enc, H, D]} from `cross_cache(encoded)`,
             returned unchanged.
    """

    def __init__(self, dim, num_heads, *, head_dim=None, causal=False, cross=False, kv_dim=None,
                 use_bias=True, init_std=0.02, out_init_std=0.02, scale=None, dropout_rate=0.0,
                 attn_dropout_rate=None, dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        # head_dim None: dim // num_heads. Set, the heads are num_heads * head_dim wide in all,
        # which need not be dim (GPT-3 XL as printed: 24 heads of 128 on a 2048-wide stream).
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"model.embed_dim={dim} is not divisible by "
                                 f"model.num_heads={num_heads}")
            head_dim = dim // num_heads
        elif head_dim < 1:
            raise ValueError(f"model.head_dim={head_dim} must be >= 1")
        if causal and cross:
            raise ValueError("cross-attention cannot be causal: its keys are another sequence")
        k1, k2 = rngs.params(), rngs.params()
        self.num_heads, self.head_dim, self.causal, self.cross = num_heads, head_dim, causal, cross
        self.dtype, self.dropout_rate, self.scale = dtype, dropout_rate, scale
        # dropout of the attention probabilities; None: the same rate as the output's
        self.attn_dropout_rate = dropout_rate if attn_dropout_rate is None else attn_dropout_rate
        heads = (num_heads, head_dim)
        make_bias = (lambda shape, axes, key: param(zeros, key, shape, axes, param_dtype)
                     if use_bias else None)
        if cross:
            kq, kkv = jax.random.split(k1)
            self.q = param(normal(init_std), kq, (dim, *heads), ("embed", "heads", "kv"),
                           param_dtype)
            self.kv = param(normal(init_std), kkv, (kv_dim or dim, 2, *heads),
                            ("embed", None, "heads", "kv"), param_dtype)
            self.q_bias = make_bias(heads, ("heads", "kv"), kq)
            self.kv_bias = make_bias((2, *heads), (None, "heads", "kv"), kkv)
        else:
            if kv_dim is not None:
                raise ValueError("kv_dim is for cross-attention; self-attention reads its input")
            self.qkv = param(normal(init_std), k1, (dim, 3, *heads),
                             ("embed", None, "heads", "kv"), param_dtype)
            self.qkv_bias = make_bias((3, *heads), (None, "heads", "kv"), k1)
        self.out = param(normal(out_init_std), k2, (*heads, dim), ("heads", "kv", "embed"),
                         param_dtype)
        self.out_bias = make_bias((dim,), ("embed",), k2)

    def _project(self, x, kernel, bias):
        y = dense(x, kernel[...].astype(self.dtype))
        return y if bias is None else add_f32(y, bias[...])

    def cross_cache(self, encoded_BSD):
        """{"k", "v"}: this layer's keys and values of the encoder output, for every step."""
        if not self.cross:
            raise ValueError("cross_cache is for cross-attention layers (cross=True)")
        kv_BSCHD = self._project(encoded_BSD, self.kv, self.kv_bias)
        return {"k": kv_BSCHD[:, :, 0], "v": kv_BSCHD[:, :, 1]}

    def init_cache(self, batch, max_len, dtype=jnp.float32):
        """An empty self-attention cache for `batch` sequences of up to `max_len` tokens."""
        shape = (batch, max_len, self.num_heads, self.head_dim)
        return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype),
                "index": jnp.zeros((), jnp.int32)}

    def __call__(self, x_BTD, kv_BSD=None, *, mask=None, bias=None, dropout_key=None,
                 cache=None):
        """(y_BTD, cache). `kv_BSD`: the sequence cross-attention reads (None with a cache)."""
        if self.cross:
            if (kv_BSD is None) == (cache is None):
                raise ValueError("cross-attention takes exactly one of kv_BSD and cache")
            q_BTHD = self._project(x_BTD, self.q, self.q_bias)
            kv = self.cross_cache(kv_BSD) if cache is None else cache
            k_BSHD, v_BSHD, causal = kv["k"], kv["v"], None
            groups = q_BTHD.shape[0] // k_BSHD.shape[0]
            if groups * k_BSHD.shape[0] != q_BTHD.shape[0]:
                raise ValueError(f"cross-attention: {q_BTHD.shape[0]} query rows for "
                                 f"{k_BSHD.shape[0]} key rows (need a multiple)")
            if groups > 1:
                # Beam search: the `groups` beams of a source (rows b*groups..) share its
                # keys/values, so they attend as one longer query sequence; the encoder's
                # K/V are then never tiled or reordered with the beams.
                B, T = k_BSHD.shape[0], q_BTHD.shape[1]
                q_BTHD = q_BTHD.reshape(B, groups * T, *q_BTHD.shape[2:])
        else:
            if kv_BSD is not None:
                raise ValueError("self-attention reads its own input; use cross=True for kv_BSD")
            qkv_BTCHD = self._project(x_BTD, self.qkv, self.qkv_bias)
            q_BTHD, k_BSHD, v_BSHD = (qkv_BTCHD[:, :, i] for i in range(3))
            T = x_BTD.shape[1]
            if cache is None:
                causal = ops.causal_mask(T) if self.causal else None
            elif not self.causal:
                raise ValueError("a growing self-attention cache needs causal=True")
            else:
                index = cache["index"]
                k_BSHD = jax.lax.dynamic_update_slice(
                    cache["k"], k_BSHD.astype(cache["k"].dtype), (0, index, 0, 0))
                v_BSHD = jax.lax.dynamic_update_slice(
                    cache["v"], v_BSHD.astype(cache["v"].dtype), (0, index, 0, 0))
                cache = {"k": k_BSHD, "v": v_BSHD, "index": index + T}
                causal = ops.causal_mask(T, k_BSHD.shape[1], q_offset=index)
        attn_key = out_key = None
        if dropout_key is not None:
            attn_key, out_key = jax.random.split(dropout_key)
        y_BTHD = ops.dot_product_attention(
            q_BTHD, k_BSHD, v_BSHD, ops.combine_masks(causal, mask), bias, scale=self.scale,
            dropout_rate=self.attn_dropout_rate, dropout_key=attn_key)
        if self.cross and groups > 1:
            y_BTHD = y_BTHD.reshape(-1, T, *y_BTHD.shape[2:])
        y_BTD = dense(y_BTHD, self.out[...].astype(self.dtype), in_dims=2)
        if self.out_bias is not None:
            y_BTD = add_f32(y_BTD, self.out_bias[...])
        return ops.dropout(y_BTD, self.dropout_rate, out_key), cache
