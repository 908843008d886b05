"""Stacks of Transformer blocks: parameters stacked on a leading `layers` axis, or one shared
block (ALBERT) applied `num_layers` times.

`scan_layers=True` runs the layers as one `jax.lax.scan`, so compile time does not grow with
depth; False is a Python loop that indexes layer i out of the same stacked parameters (same
checkpoints, the same numbers to float rounding; XLA may then fuse across layers). `remat`
rematerialises each layer's activations in the backward pass.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from llm_jax import ops
from llm_jax.layers.blocks import BlockConfig, DecoderBlock, EncoderBlock

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _layer(tree, i):
    """Layer i's slice of a pytree stacked on a leading layers axis (None stays None)."""
    return jax.tree.map(lambda a: a[i], tree)


class _Stack(nnx.Module):
    def __init__(self, make_block, num_layers, *, shared, remat, scan_layers, rngs):
        if remat not in REMAT_POLICIES:
            raise ValueError(f"model.remat={remat!r}: expected one of {sorted(REMAT_POLICIES)}")
        self.num_layers, self.shared = num_layers, shared
        self.remat, self.scan_layers = remat, scan_layers
        if shared:
            self.block = make_block(rngs)
        else:
            @nnx.split_rngs(splits=num_layers)
            @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
            def make_blocks(rngs):
                return make_block(rngs)

            self.blocks = make_blocks(rngs)

    def _layers(self, call, x, dropout_key, cache_L):
        """Threads x through the layers; `call(block, x, key, layer_cache) -> (x, layer_cache)`.

        `cache_L` (or None) holds one entry per layer on a leading axis, as does the result. It
        may be any pytree of per-layer inputs (a cache and per-layer flags, say): `call` sees
        layer i's slice and returns what is stacked as the result.
        """
        keys = None if dropout_key is None else jax.random.split(dropout_key, self.num_layers)
        hoisted = getattr(self, "hoisted", None)
        if hoisted is not None:  # see hoist_layers: no slicing here, and no remat (no grads)
            out = [None] * self.num_layers
            for i, block in enumerate(hoisted):
                x, out[i] = call(block, x, None if keys is None else keys[i], _layer(cache_L, i))
            return x, jax.tree.map(lambda *cs: jnp.stack(cs), *out)
        graphdef, state = nnx.split(self.block if self.shared else self.blocks)

        def layer(layer_state, x, key, c):
            return call(nnx.merge(graphdef, layer_state), x, key, c)

        if self.remat != "none":
            layer = jax.checkpoint(layer, policy=REMAT_POLICIES[self.remat])
        if self.scan_layers:
            def body(x, xs):
                layer_state, key, c = xs
                return layer(state if self.shared else layer_state, x, key, c)

            xs = (None if self.shared else state, keys, cache_L)
            return jax.lax.scan(body, x, xs, length=self.num_layers)
        new_cache = []
        for i in range(self.num_layers):
            x, c = layer(state if self.shared else _layer(state, i), x,
                         None if keys is None else keys[i], _layer(cache_L, i))
            new_cache.append(c)
        return x, jax.tree.map(lambda *cs: jnp.stack(cs), *new_cache)

    def hoist_layers(self):
        """Slices the stacked parameters into one block per layer, here and once, for a
        decoding loop that runs this stack at every step inside the same jitted function.

        Inside the loop each layer's weights are then read in place. Without this, XLA:CPU
        copies a layer's slice out of the stack before its matmuls at every step, scan or
        Python loop alike: 12 of the 29 ms of a GPT-2-124M step at batch 1, where the step
        is bound by reading the weights (experiments/gpt2_zeroshot/bench). Call it on a
        module merged inside that jitted function only; it is never saved."""
        if self.shared or getattr(self, "hoisted", None) is not None:
            return
        graphdef, state = nnx.split(self.blocks)
        self.hoisted = nnx.List([nnx.merge(graphdef, _layer(state, i))
                                 for i in range(self.num_layers)])


class EncoderStack(_Stack):
    """`cfg.num_layers` EncoderBlocks; `shared=True`: one block applied num_layers times."""

    def __init__(self, cfg: BlockConfig, *, shared=False, remat="none", scan_layers=True, rngs):
        super().__init__(lambda rngs: EncoderBlock(cfg, rngs=rngs), cfg.num_layers,
                         shared=shared, remat=remat, scan_layers=scan_layers, rngs=rngs)

    def __call__(self, x_BTD, *, mask=None, bias=None, dropout_key=None, all_layers=False):
        """x_BTD after the last layer; `mask`/`bias` (see EncoderBlock) are the same for all.
        `all_layers=True`: (x_BTD, every layer's output [L, B, T, D]), as probing and
        Hugging Face's `output_hidden_states` need."""
        def call(block, x, key, _):
            x = block(x, mask=mask, bias=bias, dropout_key=key)
            return x, x if all_layers else None

        x_BTD, states_LBTD = self._layers(call, x_BTD, dropout_key, None)
        return (x_BTD, states_LBTD) if all_layers else x_BTD


class DecoderStack(_Stack):
    """`cfg.num_layers` DecoderBlocks (optionally with cross-attention) and their cache.

    Cache (from `init_cache`): {"k", "v": [L, B, S_max, H, D], "index": int32[]}, plus
    "cross_k", "cross_v": [L, B, S_enc, H, D] when built with `encoded`. Every array but the
    index has the batch on axis 1, so beam search can reorder it uniformly.
    """

    def __init__(self, cfg: BlockConfig, *, cross_attention=False, shared=False, remat="none",
                 scan_layers=True, rngs):
        self.cfg, self.cross_attention = cfg, cross_attention
        super().__init__(lambda rngs: DecoderBlock(cfg, cross_attention=cross_attention,
                                                   rngs=rngs),
                         cfg.num_layers, shared=shared, remat=remat, scan_layers=scan_layers,
                         rngs=rngs)

    def __call__(self, x_BTD, *, mask=None, bias=None, encoded=None, cross_mask=None,
                 cross_bias=None, dropout_key=None, cache=None, sparse_mask=None,
                 sparse_layers=None):
        """(x_BTD, cache); the keyword inputs (see DecoderBlock) are the same for every layer,
        except that `sparse_mask` (bool, broadcastable to [B, H, T, S]; e.g. ops.local_mask)
        is ANDed with `mask` in the layers where `sparse_layers` (bool[num_layers]) is True.

        The flags ride through the scan beside the cache and select the mask inside each layer,
        so dense and sparse layers share one compiled body and one stacked parameter tree.
        """
        if (sparse_mask is None) != (sparse_layers is None):
            raise ValueError("sparse_mask and sparse_layers go together")
        if sparse_layers is not None:
            sparse_layers = jnp.asarray(sparse_layers, bool)
            if sparse_layers.shape != (self.num_layers,):
                raise ValueError(f"sparse_layers must be bool[{self.num_layers}], got shape "
                                 f"{sparse_layers.shape}")
        cache_L = None if cache is None else {n: a for n, a in cache.items() if n != "index"}

        def call(block, x, key, per_layer):
            c, sparse = per_layer
            if c is not None:
                c = {**c, "index": cache["index"]}
            layer_mask = mask
            if sparse is not None:  # a dense layer's flag turns the sparse mask all-True
                layer_mask = ops.combine_masks(mask, jnp.logical_or(sparse_mask, ~sparse))
            x, c = block(x, mask=layer_mask, bias=bias, encoded=encoded, cross_mask=cross_mask,
                         cross_bias=cross_bias, dropout_key=key, cache=c)
            return x, None if c is None else {n: a for n, a in c.items() if n != "index"}

        x_BTD, cache_L = self._layers(call, x_BTD, dropout_key, (cache_L, sparse_layers))
        if cache is not None:
            cache = {**cache_L, "index": cache["index"] + x_BTD.shape[1]}
        return x_BTD, cache

    def init_cache(self, batch, max_len, dtype=jnp.float32, *, encoded=None):
        """An empty cache; with `encoded` [B, S_enc, D], also every layer's cross-attention
        keys/values of it, computed once here instead of at every decoding step."""
        cfg = self.cfg
        head_dim = cfg.head_dim or cfg.embed_dim // cfg.num_heads
        shape = (cfg.num_layers, batch, max_len, cfg.num_heads, head_dim)
        cache = {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype),
                 "index": jnp.zeros((), jnp.int32)}
        if encoded is None:
            return cache
        if not self.cross_attention:
            raise ValueError("init_cache(encoded=...) needs a DecoderStack with cross_attention")
        if self.shared:
            kv = self.block.cross_attn.cross_cache(encoded)
            kv = {n: jnp.broadcast_to(a, (cfg.num_layers, *a.shape)) for n, a in kv.items()}
        else:
            graphdef, state = nnx.split(self.blocks)
            kv = jax.vmap(lambda s: nnx.merge(graphdef, s).cross_attn.cross_cache(encoded))(state)
        return {**cache, "cross_k": kv["k"].astype(dtype), "cross_v": kv["v"].astype(dtype)}
