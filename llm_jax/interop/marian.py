"""Hugging Face MarianMTModel <-> llm_jax's Transformer (models/seq2seq.py).

One table serves both directions: each rule names our parameter, the Hugging Face tensors it
is made of (one per layer for our stacked `layers` axis; several where we fuse q/k/v), and the
two reshapes between them. Tensors are read and written as safetensors; nothing is unpickled.

Marian's layout, from transformers' modeling_marian.py: post-LN blocks with q/k/v/out
projections (torch Linear weights are [out, in]), `self_attn_layer_norm`,
`encoder_attn_layer_norm`, `final_layer_norm`; one embedding shared by encoder, decoder and
lm_head; a `final_logits_bias` buffer; a fixed sinusoidal table with every sine before every
cosine ("concat" layout); the decoder starts from the pad token.
"""

import numpy as np

from llm_jax.interop.hf_files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    read_config,
    read_tensors,
)
from llm_jax.interop.rules import fused, heads_bias, heads_in, layer_norm, linear, out_proj, vector

# the names under which save_pretrained may keep the one tied embedding
EMBEDDING_NAMES = ("model.shared.weight", "model.decoder.embed_tokens.weight",
                   "model.encoder.embed_tokens.weight", "lm_head.weight")


def _rules(heads):
    """(our path under the stack, HF suffixes under the layer, to_ours(list), to_hf(array))."""
    def attention(ours, hf, cross):
        rules = {f"{ours}/out": out_proj(f"{hf}.out_proj.weight", heads),
                 f"{ours}/out_bias": vector(f"{hf}.out_proj.bias")}
        if cross:
            rules[f"{ours}/q"] = heads_in(f"{hf}.q_proj.weight", heads)
            rules[f"{ours}/q_bias"] = heads_bias(f"{hf}.q_proj.bias", heads)
            kv = [f"{hf}.k_proj", f"{hf}.v_proj"]
            rules[f"{ours}/kv"] = fused(kv, heads, "weight")
            rules[f"{ours}/kv_bias"] = fused(kv, heads, "bias")
        else:
            qkv = [f"{hf}.q_proj", f"{hf}.k_proj", f"{hf}.v_proj"]
            rules[f"{ours}/qkv"] = fused(qkv, heads, "weight")
            rules[f"{ours}/qkv_bias"] = fused(qkv, heads, "bias")
        return rules

    def mlp():
        return {"mlp/fc": linear("fc1.weight"), "mlp/fc_bias": vector("fc1.bias"),
                "mlp/proj": linear("fc2.weight"), "mlp/proj_bias": vector("fc2.bias")}

    encoder = {**attention("attn", "self_attn", False),
               **layer_norm("ln1", "self_attn_layer_norm"),
               **layer_norm("ln2", "final_layer_norm"), **mlp()}
    decoder = {**encoder, **attention("cross_attn", "encoder_attn", True),
               **layer_norm("ln_cross", "encoder_attn_layer_norm")}
    return {"encoder": encoder, "decoder": decoder}


def model_config(hf: dict):
    """Our `model` fields for a Marian config.json (dict); ValueError names what we lack."""
    def need(cond, what):
        if not cond:
            raise ValueError(f"{CONFIG_FILE}: {what} is not supported by llm_jax's Transformer")

    need(hf.get("model_type", "marian") == "marian", f"model_type={hf.get('model_type')!r}")
    need(hf.get("share_encoder_decoder_embeddings", True),
         "share_encoder_decoder_embeddings=false")
    need(hf.get("tie_word_embeddings", True), "tie_word_embeddings=false")
    need(hf["encoder_attention_heads"] == hf["decoder_attention_heads"],
         "different encoder and decoder head counts")
    need(hf["encoder_ffn_dim"] == hf["decoder_ffn_dim"], "different encoder and decoder FFN sizes")
    need(not hf.get("normalize_before", False), "normalize_before=true")
    act = {"swish": "swish", "silu": "swish", "gelu": "gelu", "relu": "relu"}.get(
        hf.get("activation_function", "gelu"))
    need(act is not None, f"activation_function={hf.get('activation_function')!r}")
    return dict(
        name="transformer", vocab_size=hf["vocab_size"], max_len=hf["max_position_embeddings"],
        num_encoder_layers=hf["encoder_layers"], num_decoder_layers=hf["decoder_layers"],
        num_heads=hf["encoder_attention_heads"], embed_dim=hf["d_model"],
        mlp_dim=hf["encoder_ffn_dim"], dropout_rate=float(hf.get("dropout", 0.1)),
        attention_dropout=float(hf.get("attention_dropout", 0.0)),
        activation_dropout=float(hf.get("activation_dropout", 0.0)), activation=act,
        pre_ln=False, scale_embeddings=bool(hf.get("scale_embedding", False)),
        position_layout="concat", tie_embeddings="all", logits_bias=True,
        init_std=float(hf.get("init_std", 0.02)), ln_eps=1e-5)


def special_ids(hf: dict) -> dict:
    """The ids decoding needs: Marian starts the decoder from its pad token."""
    pad = hf.get("pad_token_id")
    start = hf.get("decoder_start_token_id", pad)
    return {"pad_id": int(pad), "bos_id": int(start), "eos_id": int(hf.get("eos_token_id", 0))}


def params_from_hf(tensors: dict, cfg) -> dict:
    """Our parameter tree (NumPy, float32) from Hugging Face tensors named as in Marian."""
    rules = _rules(cfg.num_heads)
    used = set()

    def get(name):
        if name not in tensors:
            raise ValueError(f"{WEIGHTS_FILE}: tensor {name!r} is missing")
        used.add(name)
        return np.asarray(tensors[name], np.float32)

    params = {}
    for side, layers in (("encoder", cfg.num_encoder_layers), ("decoder", cfg.num_decoder_layers)):
        blocks = {}
        for ours, (hf_names, to_ours, _) in rules[side].items():
            per_layer = [to_ours([get(f"model.{side}.layers.{i}.{n}") for n in hf_names])
                         for i in range(layers)]
            node = blocks
            *parents, leaf = ours.split("/")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = np.stack(per_layer)
        params[side] = {"blocks": blocks}
    embedding = next((n for n in EMBEDDING_NAMES if n in tensors), None)
    if embedding is None:
        raise ValueError(f"{WEIGHTS_FILE}: no embedding (looked for {', '.join(EMBEDDING_NAMES)})")
    params["embed"] = {"table": get(embedding)}
    used.update(n for n in EMBEDDING_NAMES if n in tensors)
    bias = tensors.get("final_logits_bias")
    params["logits_bias"] = (np.zeros(cfg.vocab_size, np.float32) if bias is None
                             else get("final_logits_bias").reshape(-1))
    _check_positions(tensors, cfg, used)
    left = sorted(set(tensors) - used)
    if left:
        raise ValueError(f"{WEIGHTS_FILE}: {len(left)} tensors have no place in the model, "
                         f"e.g. {left[:3]}")
    return params


def _check_positions(tensors, cfg, used):
    """Marian's fixed sinusoidal tables, when saved, must be the ones the model computes."""
    from llm_jax.ops.positions import sinusoidal_positions

    for side in ("encoder", "decoder"):
        name = f"model.{side}.embed_positions.weight"
        if name in tensors:
            table = np.asarray(tensors[name], np.float32)
            ours = np.asarray(sinusoidal_positions(table.shape[0], table.shape[1], layout="concat"))
            if not np.allclose(table, ours, atol=1e-4):
                raise ValueError(f"{WEIGHTS_FILE}: {name} is not Marian's sinusoidal table")
            used.add(name)


def params_to_hf(params: dict, cfg) -> dict:
    """Hugging Face tensors (NumPy) of our parameter tree: the inverse of params_from_hf."""
    from llm_jax.ops.positions import sinusoidal_positions

    rules = _rules(cfg.num_heads)
    out = {}
    for side, layers in (("encoder", cfg.num_encoder_layers), ("decoder", cfg.num_decoder_layers)):
        for ours, (hf_names, _, to_hf) in rules[side].items():
            node = params[side]["blocks"]
            for p in ours.split("/"):
                node = node[p]
            for i in range(layers):
                for n, w in zip(hf_names, to_hf(np.asarray(node[i], np.float32))):
                    out[f"model.{side}.layers.{i}.{n}"] = np.ascontiguousarray(w)
        out[f"model.{side}.embed_positions.weight"] = np.asarray(
            sinusoidal_positions(cfg.max_len, cfg.embed_dim, layout="concat"))
    out["model.shared.weight"] = np.asarray(params["embed"]["table"], np.float32)
    out["final_logits_bias"] = np.asarray(params["logits_bias"], np.float32).reshape(1, -1)
    return out


def read_hf_dir(hf_dir: str) -> tuple[dict, dict]:
    """(config.json as a dict, tensors) of a Hugging Face model directory."""
    return read_config(hf_dir), read_tensors(hf_dir)[0]


def load_marian(hf_dir: str):
    """(Transformer, its model config, special ids) of a Marian directory, in float32."""
    import jax.numpy as jnp
    import ml_collections
    from flax import nnx

    from llm_jax.models import seq2seq

    hf, tensors = read_hf_dir(hf_dir)
    cfg = seq2seq.default_config()
    cfg.update(model_config(hf))
    params = params_from_hf(tensors, cfg)
    abstract = nnx.eval_shape(lambda: seq2seq.Transformer(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    nnx.replace_by_pure_dict(state, _as_jax(params, jnp))
    return nnx.merge(graphdef, state), ml_collections.ConfigDict(cfg), special_ids(hf)


def _as_jax(tree, jnp):
    return {k: _as_jax(v, jnp) if isinstance(v, dict) else jnp.asarray(v) for k, v in tree.items()}
