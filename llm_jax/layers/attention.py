"""Multi-head self-attention with an optional KV cache (the math is in ops.attention)."""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.params import dense, normal, param, zeros


class SelfAttention(nnx.Module):
    """Causal (or masked) self-attention with one fused q/k/v projection.

    The cache is a plain dict {"k": [B,S,H,D], "v": [B,S,H,D], "index": int32[]}, passed in
    and returned, so decoding stays a pure function that can be scanned over layers.
    """

    def __init__(self, dim, num_heads, *, use_bias=True, init_std=0.02, out_init_std=0.02,
                 dropout_rate=0.0, dtype=jnp.float32, param_dtype=jnp.float32, rngs):
        if dim % num_heads:
            raise ValueError(f"model.embed_dim={dim} is not divisible by model.num_heads={num_heads}")
        head_dim = dim // num_heads
        k1, k2 = rngs.params(), rngs.params()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.dtype, self.dropout_rate = dtype, dropout_rate
        self.qkv = param(normal(init_std), k1, (dim, 3, num_heads, head_dim),
                         ("embed", None, "heads", "kv"), param_dtype)
        self.out = param(normal(out_init_std), k2, (num_heads, head_dim, dim),
                         ("heads", "kv", "embed"), param_dtype)
        self.qkv_bias = (param(zeros, k1, (3, num_heads, head_dim), (None, "heads", "kv"),
                               param_dtype) if use_bias else None)
        self.out_bias = param(zeros, k2, (dim,), ("embed",), param_dtype) if use_bias else None

    def __call__(self, x_BTD, *, mask=None, dropout_key=None, cache=None):
        qkv_BTCHD = dense(x_BTD, self.qkv[...].astype(self.dtype))
        if self.qkv_bias is not None:
            qkv_BTCHD = qkv_BTCHD + self.qkv_bias[...].astype(self.dtype)
        q_BTHD, k_BTHD, v_BTHD = (qkv_BTCHD[:, :, i] for i in range(3))
        T = x_BTD.shape[1]
        if cache is None:
            causal = ops.causal_mask(T)
        else:
            index = cache["index"]
            k_BTHD = jax.lax.dynamic_update_slice(cache["k"], k_BTHD.astype(cache["k"].dtype),
                                                  (0, index, 0, 0))
            v_BTHD = jax.lax.dynamic_update_slice(cache["v"], v_BTHD.astype(cache["v"].dtype),
                                                  (0, index, 0, 0))
            cache = {"k": k_BTHD, "v": v_BTHD, "index": index + T}
            causal = ops.causal_mask(T, k_BTHD.shape[1], q_offset=index)
        attn_key = out_key = None
        if dropout_key is not None:
            attn_key, out_key = jax.random.split(dropout_key)
        y_BTHD = ops.dot_product_attention(q_BTHD, k_BTHD, v_BTHD, ops.combine_masks(causal, mask),
                                           dropout_rate=self.dropout_rate, dropout_key=attn_key)
        y_BTD = dense(y_BTHD, self.out[...].astype(self.dtype), in_dims=2)
        if self.out_bias is not None:
            y_BTD = y_BTD + self.out_bias[...].astype(self.dtype)
        return ops.dropout(y_BTD, self.dropout_rate, out_key), cache

