"""Hugging Face GPT-2 (GPT2LMHeadModel, or a bare GPT2Model) <-> llm_jax's GPT (models/gpt.py,
variant "gpt2": pre-LN, final LN, learned positions, tied embeddings).

One table serves both directions: each rule names our parameter, the Hugging Face tensor it is
(one per layer for our stacked `layers` axis) and the two conversions. Layouts from
transformers' modeling_gpt2.py: every projection is a Conv1D, whose weight is already
[in, out] as ours; c_attn fuses q, k, v as [D, 3D] (ours [D, 3, H, Dh]); attn.c_proj [D, D] is
ours [H, Dh, D]; the LM head is the word embedding unless tie_word_embeddings is false. Old
checkpoints also hold the causal mask as buffers (attn.bias, attn.masked_bias): derived, not
read.

Vocabulary padding: export writes every row of our embedding and says so in config.json, so
configs/gpt2.py's table of 50,304 rows (GPT-2's 50,257 tokens padded to a multiple of 64)
exports as vocab_size=50304. from_pretrained then gives exactly our logits; the 47 extra rows
are ids no text encodes to, whose logits training has pushed down. Cutting them off would
change every softmax (and the loss) a little, and an import would no longer give back the
model that was exported. Import keeps a checkpoint's own vocab_size (50,257 for OpenAI's).
"""

import numpy as np

from llm_jax.interop.hf_files import CONFIG_FILE
from llm_jax.interop.rules import (
    conv1d_fused,
    conv1d_out,
    fused_bias,
    layer_norm,
    linear,
    read_rule,
    tree_get,
    tree_set,
    vector,
)

FAMILY = "gpt2"
ARCHITECTURE = "GPT2LMHeadModel"
# GPT2Config's defaults, which transformers fills in for a field config.json leaves out.
DEFAULTS = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                n_inner=None, activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1,
                attn_pdrop=0.1, layer_norm_epsilon=1e-5, initializer_range=0.02,
                scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
                reorder_and_upcast_attn=False, add_cross_attention=False,
                tie_word_embeddings=True, bos_token_id=50256, eos_token_id=50256)
# gelu_new, gelu_pytorch_tanh and gelu_fast are all the tanh approximation, written three ways.
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "gelu_fast": "gelu_tanh", "gelu": "gelu", "relu": "relu", "silu": "swish",
               "swish": "swish"}
EXPORT_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "swish": "silu"}
LN_EPS = 1e-5  # models/gpt.py's LayerNorms have no eps field: this is theirs
# tensors a checkpoint may hold that are buffers or tied to another tensor
DERIVED = (".attn.bias", ".attn.masked_bias", "lm_head.weight")
STACK = "stack/blocks"


def base_prefix(tensors) -> str:
    """"transformer." for a GPT2LMHeadModel checkpoint; "" for a bare GPT2Model (OpenAI's
    original `gpt2` repository)."""
    return "transformer." if "transformer.wte.weight" in tensors else ""


def _block_rules(heads):
    """Our path under one block -> rule, the HF names relative to h.{i}."""
    return {
        **layer_norm("ln1", "ln_1"), **layer_norm("ln2", "ln_2"),
        "attn/qkv": conv1d_fused("attn.c_attn.weight", 3, heads),
        "attn/qkv_bias": fused_bias("attn.c_attn.bias", 3, heads),
        "attn/out": conv1d_out("attn.c_proj.weight", heads),
        "attn/out_bias": vector("attn.c_proj.bias"),
        "mlp/fc": vector("mlp.c_fc.weight"), "mlp/fc_bias": vector("mlp.c_fc.bias"),
        "mlp/proj": vector("mlp.c_proj.weight"), "mlp/proj_bias": vector("mlp.c_proj.bias"),
    }


def _top_rules(base, cfg):
    rules = {"embed/table": vector(f"{base}wte.weight"),
             "positions/table": vector(f"{base}wpe.weight"), **layer_norm("final_ln", f"{base}ln_f")}
    if not cfg.tie_embeddings:
        rules["head"] = linear("lm_head.weight")  # a torch Linear [V, D]; our head is [D, V]
    return rules


def model_config(hf: dict) -> dict:
    """Our `model` fields (models/gpt.py) for a GPT-2 config.json (dict); ValueError names the
    field we do not support."""
    if hf.get("model_type") != FAMILY:
        raise ValueError(f"{CONFIG_FILE}: model_type={hf.get('model_type')!r} is not {FAMILY!r}")
    c = {**DEFAULTS, **hf}

    def need(cond, field, why="is not supported by llm_jax's GPT"):
        if not cond:
            raise ValueError(f"{CONFIG_FILE}: {field}={c[field]!r} {why}")

    need(c["scale_attn_weights"], "scale_attn_weights",
         "is not supported: llm_jax's GPT scales attention by 1/sqrt(head_dim)")
    need(not c["scale_attn_by_inverse_layer_idx"], "scale_attn_by_inverse_layer_idx")
    need(not c["add_cross_attention"], "add_cross_attention")
    need(c["activation_function"] in ACTIVATIONS, "activation_function",
         f"is not one of {sorted(ACTIVATIONS)}")
    need(c["layer_norm_epsilon"] == LN_EPS, "layer_norm_epsilon",
         f"is not supported: llm_jax's GPT LayerNorms use eps={LN_EPS}")
    need(c["n_inner"] is None or (isinstance(c["n_inner"], int) and c["n_inner"] > 0),
         "n_inner", "must be a positive integer or null (4 * n_embd)")
    need(c["n_embd"] % c["n_head"] == 0, "n_embd", f"is not divisible by n_head={c['n_head']}")
    # reorder_and_upcast_attn changes only rounding (our softmax is float32 anyway): accepted.
    drops = {k: float(c[k]) for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
    if len(set(drops.values())) > 1:
        raise ValueError(f"{CONFIG_FILE}: resid_pdrop, embd_pdrop, attn_pdrop differ "
                         f"({', '.join(map(str, drops.values()))}); llm_jax's GPT has one "
                         "model.dropout_rate")
    return dict(name="gpt", variant="gpt2", vocab_size=c["vocab_size"],
                max_len=c["n_positions"], num_layers=c["n_layer"], num_heads=c["n_head"],
                embed_dim=c["n_embd"], mlp_dim=c["n_inner"] or 0,
                dropout_rate=drops["resid_pdrop"], use_bias=True,
                activation=ACTIVATIONS[c["activation_function"]],
                init_std=float(c["initializer_range"]),
                tie_embeddings=bool(c["tie_word_embeddings"]))


def params_from_hf(tensors: dict, cfg, shapes: dict, source: str) -> dict:
    """Our parameter tree (NumPy float32) from HF tensors. `shapes` is our parameter tree's
    shapes (a leaf per parameter), so that a tensor disagreeing with config.json is named."""
    base = base_prefix(tensors)
    used, params = set(), {}
    for path, rule in _top_rules(base, cfg).items():
        tree_set(params, path, read_rule(rule, rule[0], tuple(tree_get(shapes, path)), tensors,
                                         source, used))
    for path, rule in _block_rules(cfg.num_heads).items():
        shape = tuple(tree_get(shapes, f"{STACK}/{path}"))[1:]
        tree_set(params, f"{STACK}/{path}", np.stack([
            read_rule(rule, [f"{base}h.{i}.{n}" for n in rule[0]], shape, tensors, source, used)
            for i in range(cfg.num_layers)]))
    _check_complete(params, shapes)
    if cfg.tie_embeddings and "lm_head.weight" in tensors:
        if not np.allclose(tensors["lm_head.weight"], params["embed"]["table"]):
            raise ValueError(f"{source}: lm_head.weight differs from {base}wte.weight, but "
                             f"{CONFIG_FILE} ties them (tie_word_embeddings=true)")
        used.add("lm_head.weight")
    left = sorted(n for n in set(tensors) - used if not n.endswith(DERIVED))
    if left:
        raise ValueError(f"{source}: {len(left)} tensors have no place in the model, e.g. "
                         f"{left[:3]}")
    return params


def _check_complete(params, shapes, prefix=""):
    """Every parameter of our model has a Hugging Face tensor (so the table stays whole)."""
    for key, value in shapes.items():
        if isinstance(value, dict):
            _check_complete(params.get(key, {}), value, f"{prefix}{key}/")
        elif key not in params:
            raise ValueError(f"llm_jax's GPT parameter {prefix}{key} has no Hugging Face GPT-2 "
                             "tensor")


def params_to_hf(params: dict, cfg) -> dict:
    """HF tensors (NumPy) of our parameter tree, named as GPT2LMHeadModel stores them: the
    inverse of params_from_hf. A tied LM head is not stored (from_pretrained ties it)."""
    _check_exportable(cfg)
    out = {}

    def put(names, arrays):
        for n, w in zip(names, arrays):
            out[n] = np.ascontiguousarray(w, np.float32)

    for path, (names, _, to_hf) in _top_rules("transformer.", cfg).items():
        put(names, to_hf(np.asarray(tree_get(params, path), np.float32)))
    for path, (names, _, to_hf) in _block_rules(cfg.num_heads).items():
        value = np.asarray(tree_get(params, f"{STACK}/{path}"), np.float32)
        for i in range(cfg.num_layers):
            put([f"transformer.h.{i}.{n}" for n in names], to_hf(value[i]))
    return out


def _check_exportable(cfg):
    if cfg.variant != "gpt2" or not cfg.use_bias:
        raise ValueError(f"export-hf: GPT-2 needs model.variant='gpt2' and use_bias=True; this "
                         f"model has variant={cfg.variant!r}, use_bias={cfg.use_bias}")
    # .get: fields that model configs saved before them lack
    if cfg.get("attention_pattern", "dense") != "dense":
        raise ValueError(f"export-hf: model.attention_pattern={cfg.attention_pattern!r}; GPT-2 "
                         "attends densely in every layer")
    if cfg.get("head_dim", 0) not in (0, cfg.embed_dim // cfg.num_heads):
        raise ValueError(f"export-hf: model.head_dim={cfg.head_dim}; GPT-2's heads are "
                         f"embed_dim / num_heads = {cfg.embed_dim // cfg.num_heads} wide")
    if cfg.activation not in EXPORT_ACTIVATIONS:
        raise ValueError(f"export-hf: model.activation={cfg.activation!r} has no Hugging Face "
                         "name")


def hf_config(cfg, eos_id: int | None = None) -> dict:
    """config.json for our model config: what GPT2LMHeadModel.from_pretrained needs to rebuild
    it. vocab_size is our embedding's row count, padding included (see the module docstring)."""
    _check_exportable(cfg)
    special = {} if eos_id is None else {"bos_token_id": eos_id, "eos_token_id": eos_id}
    return dict(
        architectures=[ARCHITECTURE], model_type=FAMILY, vocab_size=cfg.vocab_size,
        n_positions=cfg.max_len, n_embd=cfg.embed_dim, n_layer=cfg.num_layers,
        n_head=cfg.num_heads, n_inner=cfg.mlp_dim or None,
        activation_function=EXPORT_ACTIVATIONS[cfg.activation], resid_pdrop=cfg.dropout_rate,
        embd_pdrop=cfg.dropout_rate, attn_pdrop=cfg.dropout_rate, layer_norm_epsilon=LN_EPS,
        initializer_range=cfg.init_std, scale_attn_weights=True,
        scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
        add_cross_attention=False, tie_word_embeddings=bool(cfg.tie_embeddings),
        use_cache=True, **special)


def load_hf(hf_dir: str):
    """(GPT, its model config) of a Hugging Face GPT-2 directory."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from llm_jax.interop.hf_files import read_config, read_tensors
    from llm_jax.models import gpt

    hf = read_config(hf_dir)
    fields = model_config(hf)
    tensors, source = read_tensors(hf_dir)
    cfg = gpt.default_config()
    cfg.update(fields)
    abstract = nnx.eval_shape(lambda: gpt.GPT(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    shapes = jax.tree.map(lambda x: x.shape, nnx.to_pure_dict(state))
    params = params_from_hf(tensors, cfg, shapes, source)
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    return nnx.merge(graphdef, state), cfg
