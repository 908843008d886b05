"""Decoder-only Transformer blocks (pre- or post-LN) and a layer stack scanned over depth."""

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax.layers.attention import SelfAttention
from llm_jax.layers.mlp import MLP
from llm_jax.layers.norms import LayerNorm


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    embed_dim: int
    num_heads: int
    mlp_dim: int
    num_layers: int
    pre_ln: bool = True
    dropout_rate: float = 0.0
    use_bias: bool = True
    activation: str = "gelu_tanh"
    ln_eps: float = 1e-5
    init_std: float = 0.02
    scaled_residual_init: bool = True  # GPT-2: residual projections get std / sqrt(2 * layers)
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32


class DecoderBlock(nnx.Module):
    def __init__(self, cfg: BlockConfig, *, rngs):
        out_std = cfg.init_std
        if cfg.scaled_residual_init:
            out_std = cfg.init_std / (2 * cfg.num_layers) ** 0.5
        common = dict(use_bias=cfg.use_bias, init_std=cfg.init_std, out_init_std=out_std,
                      dropout_rate=cfg.dropout_rate, dtype=cfg.dtype,
                      param_dtype=cfg.param_dtype, rngs=rngs)
        norm = dict(eps=cfg.ln_eps, use_bias=cfg.use_bias, param_dtype=cfg.param_dtype, rngs=rngs)
        self.pre_ln = cfg.pre_ln
        self.ln1 = LayerNorm(cfg.embed_dim, **norm)
        self.attn = SelfAttention(cfg.embed_dim, cfg.num_heads, **common)
        self.ln2 = LayerNorm(cfg.embed_dim, **norm)
        self.mlp = MLP(cfg.embed_dim, cfg.mlp_dim, activation=cfg.activation, **common)

    def __call__(self, x, *, mask=None, dropout_key=None, cache=None):
        k_attn = k_mlp = None
        if dropout_key is not None:
            k_attn, k_mlp = jax.random.split(dropout_key)
        if self.pre_ln:  # GPT-2: x + f(LN(x))
            y, cache = self.attn(self.ln1(x), mask=mask, dropout_key=k_attn, cache=cache)
            x = x + y
            x = x + self.mlp(self.ln2(x), k_mlp)
        else:  # GPT-1 / original Transformer: LN(x + f(x))
            y, cache = self.attn(x, mask=mask, dropout_key=k_attn, cache=cache)
            x = self.ln1(x + y)
            x = self.ln2(x + self.mlp(x, k_mlp))
        return x, cache


REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class DecoderStack(nnx.Module):
    """`num_layers` blocks whose parameters are stacked on a leading `layers` axis.

    The forward pass is one `jax.lax.scan` over that axis, so compile time does not grow with
    depth; `remat` rematerialises each block's activations in the backward pass.
    """

    def __init__(self, cfg: BlockConfig, *, remat="none", rngs):
        if remat not in REMAT_POLICIES:
            raise ValueError(f"model.remat={remat!r}: expected one of {sorted(REMAT_POLICIES)}")
        self.num_layers, self.remat = cfg.num_layers, remat

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make_blocks(rngs):
            return DecoderBlock(cfg, rngs=rngs)

        self.blocks = make_blocks(rngs)

    def __call__(self, x, *, mask=None, dropout_key=None, cache=None):
        graphdef, state = nnx.split(self.blocks)
        keys = None if dropout_key is None else jax.random.split(dropout_key, self.num_layers)
        layer_cache = None if cache is None else {"k": cache["k"], "v": cache["v"]}

        def body(x, layer):
            layer_state, key, kv = layer
            c = None if kv is None else {**kv, "index": cache["index"]}
            x, c = nnx.merge(graphdef, layer_state)(x, mask=mask, dropout_key=key, cache=c)
            return x, None if c is None else {"k": c["k"], "v": c["v"]}

        if self.remat != "none":
            body = jax.checkpoint(body, policy=REMAT_POLICIES[self.remat])
        x, new_kv = jax.lax.scan(body, x, (state, keys, layer_cache))
        if cache is not None:
            cache = {**new_kv, "index": cache["index"] + x.shape[1]}
        return x, cache


def init_stack_cache(cfg: BlockConfig, batch, max_len, dtype=jnp.float32):
    shape = (cfg.num_layers, batch, max_len, cfg.num_heads, cfg.embed_dim // cfg.num_heads)
    return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype),
            "index": jnp.zeros((), jnp.int32)}

