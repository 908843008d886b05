"""Hugging Face BERT, RoBERTa and ALBERT <-> llm_jax's Bert (models/bert.py).

One table per family serves both directions: each rule names our parameter, the Hugging Face
tensors it is made of (one per layer for our stacked `layers` axis; three where we fuse
q/k/v) and the two conversions between them. Layouts from transformers' modeling_bert.py,
modeling_roberta.py and modeling_albert.py: torch Linear weights are [out, in]; the MLM
decoder is the word embedding (tied, so not stored) plus its own bias; ALBERT keeps its one
shared layer under `albert_layer_groups.0.albert_layers.0`.
"""

import numpy as np

from llm_jax.interop.hf_files import CONFIG_FILE
from llm_jax.interop.rules import fused, layer_norm, linear, out_proj, read_rule, tree_get, tree_set, vector

FAMILIES = ("bert", "roberta", "albert")
ARCHITECTURES = {"bert": ("BertForPreTraining", "BertForMaskedLM"),
                 "roberta": ("RobertaForMaskedLM", "RobertaForMaskedLM"),
                 "albert": ("AlbertForPreTraining", "AlbertForMaskedLM")}
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "gelu_fast": "gelu_tanh", "relu": "relu", "silu": "swish", "swish": "swish"}
# tensors a checkpoint may hold that are tied to or computed from another one
DERIVED = ("embeddings.position_ids", "embeddings.token_type_ids", "decoder.weight",
           "decoder.bias")


def _dense(ours, hf):
    return {f"{ours}/kernel": linear(f"{hf}.weight"), f"{ours}/bias": vector(f"{hf}.bias")}


def _block_rules(family, heads):
    """Our path under one block -> rule, the HF names relative to the layer."""
    if family == "albert":
        names = dict(q="attention.query", k="attention.key", v="attention.value",
                     out="attention.dense", ln1="attention.LayerNorm", fc="ffn",
                     proj="ffn_output", ln2="full_layer_layer_norm")
    else:
        names = dict(q="attention.self.query", k="attention.self.key",
                     v="attention.self.value", out="attention.output.dense",
                     ln1="attention.output.LayerNorm", fc="intermediate.dense",
                     proj="output.dense", ln2="output.LayerNorm")
    qkv = [names["q"], names["k"], names["v"]]
    return {
        "attn/qkv": fused(qkv, heads, "weight"), "attn/qkv_bias": fused(qkv, heads, "bias"),
        "attn/out": out_proj(names["out"] + ".weight", heads),
        "attn/out_bias": vector(names["out"] + ".bias"),
        **layer_norm("ln1", names["ln1"]), **layer_norm("ln2", names["ln2"]),
        "mlp/fc": linear(names["fc"] + ".weight"), "mlp/fc_bias": vector(names["fc"] + ".bias"),
        "mlp/proj": linear(names["proj"] + ".weight"),
        "mlp/proj_bias": vector(names["proj"] + ".bias"),
    }


def layer_prefix(family, base, i):
    if family == "albert":
        return f"{base}encoder.albert_layer_groups.0.albert_layers.0."
    return f"{base}encoder.layer.{i}."


def _top_rules(family, base, cfg):
    """Our path -> rule for everything outside the layers, as far as `cfg` has it."""
    rules = {"embed/table": vector(f"{base}embeddings.word_embeddings.weight"),
             "positions/table": vector(f"{base}embeddings.position_embeddings.weight"),
             "segments/table": vector(f"{base}embeddings.token_type_embeddings.weight"),
             **layer_norm("embed_ln", f"{base}embeddings.LayerNorm")}
    if family == "albert":
        heads = dict(mlm_dense="predictions.dense", mlm_ln="predictions.LayerNorm",
                     mlm_bias="predictions.bias", sentence="sop_classifier.classifier",
                     pooler=f"{base}pooler")
        if cfg.embedding_dim and cfg.embedding_dim != cfg.embed_dim:
            rules.update(_dense("embed_proj", f"{base}encoder.embedding_hidden_mapping_in"))
    elif family == "roberta":
        heads = dict(mlm_dense="lm_head.dense", mlm_ln="lm_head.layer_norm",
                     mlm_bias="lm_head.bias", sentence=None, pooler=f"{base}pooler.dense")
    else:
        heads = dict(mlm_dense="cls.predictions.transform.dense",
                     mlm_ln="cls.predictions.transform.LayerNorm", mlm_bias="cls.predictions.bias",
                     sentence="cls.seq_relationship", pooler=f"{base}pooler.dense")
    rules.update(_dense("mlm_dense", heads["mlm_dense"]))
    rules.update(layer_norm("mlm_ln", heads["mlm_ln"]))
    rules["mlm_bias"] = vector(heads["mlm_bias"])
    if cfg.pooler:
        rules.update(_dense("pooler", heads["pooler"]))
    if cfg.sentence_head:
        rules.update(_dense("sentence", heads["sentence"]))
    return rules


def family_of(cfg) -> str:
    """Which Hugging Face family a model config exports as."""
    if cfg.shared_layers or (cfg.embedding_dim and cfg.embedding_dim != cfg.embed_dim):
        if not cfg.shared_layers or cfg.position_ids != "arange":
            raise ValueError("export-hf: ALBERT needs model.shared_layers=True and "
                             "position_ids='arange'; this model has no Hugging Face class")
        return "albert"
    return "roberta" if cfg.position_ids == "cumsum_mask" else "bert"


def base_prefix(family, tensors) -> str:
    """"bert." etc. for a model with heads; "" for a bare BertModel checkpoint."""
    return f"{family}." if f"{family}.embeddings.word_embeddings.weight" in tensors else ""


def model_config(hf: dict, tensors: dict):
    """(family, our `model` fields) for a config.json (dict) and its tensors; ValueError
    names the field we do not support."""
    family = hf.get("model_type")
    if family not in FAMILIES:
        raise ValueError(f"{CONFIG_FILE}: model_type={family!r} is not one of {FAMILIES}")

    def need(cond, what):
        if not cond:
            raise ValueError(f"{CONFIG_FILE}: {what} is not supported by llm_jax's Bert")

    need(hf.get("position_embedding_type", "absolute") == "absolute",
         f"position_embedding_type={hf.get('position_embedding_type')!r}")
    need(hf.get("tie_word_embeddings", True), "tie_word_embeddings=false")
    act = ACTIVATIONS.get(hf.get("hidden_act", "gelu"))
    need(act is not None, f"hidden_act={hf.get('hidden_act')!r}")
    if family == "albert":
        need(hf.get("num_hidden_groups", 1) == 1, "num_hidden_groups != 1")
        need(hf.get("inner_group_num", 1) == 1, "inner_group_num != 1")
    base = base_prefix(family, tensors)
    pooler = {"albert": f"{base}pooler.weight"}.get(family, f"{base}pooler.dense.weight")
    sentence = {"bert": "cls.seq_relationship.weight",
                "albert": "sop_classifier.classifier.weight"}.get(family)
    fields = dict(
        name="bert", vocab_size=hf["vocab_size"], max_len=hf["max_position_embeddings"],
        type_vocab_size=hf.get("type_vocab_size", 2), num_layers=hf["num_hidden_layers"],
        num_heads=hf["num_attention_heads"], embed_dim=hf["hidden_size"],
        mlp_dim=hf["intermediate_size"],
        embedding_dim=hf.get("embedding_size", 0) if family == "albert" else 0,
        shared_layers=family == "albert",
        dropout_rate=float(hf.get("hidden_dropout_prob", 0.1)),
        attention_dropout=float(hf.get("attention_probs_dropout_prob", 0.1)),
        classifier_dropout=float(hf.get("classifier_dropout_prob") or 0.0)
        if family == "albert" else 0.0,
        activation=act, ln_eps=float(hf.get("layer_norm_eps", 1e-12)),
        init_std=float(hf.get("initializer_range", 0.02)),
        position_ids="cumsum_mask" if family == "roberta" else "arange",
        pad_position=int(hf.get("pad_token_id", 1) or 0) if family == "roberta" else 1,
        pooler=pooler in tensors,
        sentence_head=("sop" if family == "albert" else "nsp")
        if sentence is not None and sentence in tensors else "")
    return family, fields


def _rules(family, base, cfg):
    """(top rules, block rules, the HF name of layer i's tensor `n`)."""
    blocks = _block_rules(family, cfg.num_heads)
    return _top_rules(family, base, cfg), blocks, lambda i, n: layer_prefix(family, base, i) + n


def _layers(cfg):
    return 1 if cfg.shared_layers else cfg.num_layers


def params_from_hf(family, tensors: dict, cfg, shapes: dict, source: str) -> dict:
    """Our parameter tree (NumPy float32) from HF tensors. `shapes` is our parameter tree's
    shapes (a leaf per parameter), so that a tensor disagreeing with config.json is named."""
    top, blocks, layer_name = _rules(family, base_prefix(family, tensors), cfg)
    used = set()

    def convert(rule, names, our_shape):
        return read_rule(rule, names, our_shape, tensors, source, used)

    params = {}
    for path, rule in top.items():
        tree_set(params, path, convert(rule, rule[0], tuple(tree_get(shapes, path))))
    stack = "encoder/block" if cfg.shared_layers else "encoder/blocks"
    for path, rule in blocks.items():
        full = f"{stack}/{path}"
        shape = tuple(tree_get(shapes, full))
        if cfg.shared_layers:
            tree_set(params, full, convert(rule, [layer_name(0, n) for n in rule[0]], shape))
        else:
            tree_set(params, full, np.stack([convert(rule, [layer_name(i, n) for n in rule[0]],
                                                 shape[1:]) for i in range(cfg.num_layers)]))
    _check_tied(tensors, params, used, source)
    left = sorted(n for n in set(tensors) - used if not n.endswith(DERIVED))
    if left:
        raise ValueError(f"{source}: {len(left)} tensors have no place in the model, e.g. "
                         f"{left[:3]}")
    return params


def _check_tied(tensors, params, used, source):
    """A stored decoder weight must be the word embedding: we tie them."""
    for name in tensors:
        if name.endswith("decoder.weight"):
            if not np.allclose(tensors[name], params["embed"]["table"]):
                raise ValueError(f"{source}: {name} differs from the word embedding; llm_jax "
                                 "ties them (tie_word_embeddings=true)")
            used.add(name)


def params_to_hf(params: dict, cfg) -> tuple[str, dict]:
    """(family, HF tensors as NumPy) of our parameter tree: the inverse of params_from_hf,
    named as the family's *ForPreTraining / *ForMaskedLM model stores them."""
    family = family_of(cfg)
    top, blocks, layer_name = _rules(family, f"{family}.", cfg)
    out = {}

    def put(names, arrays):
        for n, w in zip(names, arrays):
            out[n] = np.ascontiguousarray(w, np.float32)

    for path, (names, _, to_hf) in top.items():
        put(names, to_hf(np.asarray(tree_get(params, path), np.float32)))
    stack = "encoder/block" if cfg.shared_layers else "encoder/blocks"
    for path, (names, _, to_hf) in blocks.items():
        value = np.asarray(tree_get(params, f"{stack}/{path}"), np.float32)
        for i in range(_layers(cfg)):
            put([layer_name(i, n) for n in names], to_hf(value if cfg.shared_layers else value[i]))
    return family, out


def hf_config(cfg, special: dict) -> dict:
    """config.json for our model config: what `from_pretrained` needs to rebuild it."""
    family = family_of(cfg)
    act = {v: k for k, v in ACTIVATIONS.items() if k in ("gelu", "gelu_new", "relu", "silu")}
    if cfg.activation not in act:
        raise ValueError(f"export-hf: model.activation={cfg.activation!r} has no Hugging Face "
                         "name")
    arch = ARCHITECTURES[family][0 if cfg.sentence_head else 1]
    config = dict(
        architectures=[arch], model_type=family, vocab_size=cfg.vocab_size,
        hidden_size=cfg.embed_dim, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.mlp_dim,
        hidden_act=act[cfg.activation], hidden_dropout_prob=cfg.dropout_rate,
        attention_probs_dropout_prob=cfg.attention_dropout,
        max_position_embeddings=cfg.max_len, type_vocab_size=cfg.type_vocab_size,
        initializer_range=cfg.init_std, layer_norm_eps=cfg.ln_eps,
        position_embedding_type="absolute", tie_word_embeddings=True,
        **{f"{k}_token_id": v for k, v in special.items() if v is not None and v >= 0})
    if family == "albert":
        config.update(embedding_size=cfg.embedding_dim or cfg.embed_dim, num_hidden_groups=1,
                      inner_group_num=1, classifier_dropout_prob=cfg.classifier_dropout)
    if family == "roberta":
        config["pad_token_id"] = cfg.pad_position
    return config


def load_hf(hf_dir: str):
    """(Bert, its model config, family) of a Hugging Face BERT/RoBERTa/ALBERT directory."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from llm_jax.interop.hf_files import read_config, read_tensors
    from llm_jax.models import bert

    hf = read_config(hf_dir)
    tensors, source = read_tensors(hf_dir)
    family, fields = model_config(hf, tensors)
    cfg = bert.default_config()
    cfg.update(fields)
    abstract = nnx.eval_shape(lambda: bert.Bert(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    shapes = jax.tree.map(lambda x: x.shape, nnx.to_pure_dict(state))
    params = params_from_hf(family, tensors, cfg, shapes, source)
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    return nnx.merge(graphdef, state), cfg, family
