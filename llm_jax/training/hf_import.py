"""`import-hf`: a Hugging Face model directory (Marian, BERT, RoBERTa, ALBERT, GPT-2) as a new
llm_jax workdir.

The workdir is what training would have left: config.json, the tokenizer, and a checkpoint
(step 0) of the full train state holding the imported parameters, so `eval`, `translate`,
`llm_jax.load` and further training (fine-tuning) read it unchanged. It is built beside the
target and renamed into place when complete, so a failed import leaves nothing behind.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp

from llm_jax.data.hf_tokenizer_files import read_hf_tokenizer
from llm_jax.data.marian_tokenizer import MarianTokenizer
from llm_jax.interop import bert as bert_interop
from llm_jax.interop import gpt2, marian
from llm_jax.interop.hf_files import read_config, read_tensors
from llm_jax.training import sharding
from llm_jax.training.checkpoints import Checkpointer
from llm_jax.training.config_schema import default_config
from llm_jax.training.experiment import save_config
from llm_jax.training.optimizer import make_optimizer, model_param_axes
from llm_jax.training.state import make_state_spec

IMPORT_FILE = "imported_from.json"
# config.task of an imported BERT-family workdir: its family's pre-training objective
MASKED_LM_RECIPES = {
    "bert": dict(sentence_task="nsp", packing="pairs", masking="static"),
    "roberta": dict(sentence_task="", packing="full_sentences", masking="dynamic", dupe_factor=1),
    "albert": dict(sentence_task="sop", packing="pairs", masking="static"),
}


def marian_config(hf: dict):
    """An llm_jax config (Transformer + seq2seq) that decodes as Hugging Face's generate."""
    c = default_config("transformer", "seq2seq")
    c.model.update(marian.model_config(hf))
    ids = marian.special_ids(hf)
    c.task.update(pad_id=ids["pad_id"], bos_id=ids["bos_id"], eos_id=ids["eos_id"],
                  hf_rules=True, force_eos=hf.get("forced_eos_token_id") is not None,
                  length_penalty="hf", alpha=float(hf.get("length_penalty", 1.0)),
                  beam_size=int(hf.get("num_beams") or 4),
                  # OPUS-MT configs ban the pad token (bad_words_ids [[pad]])
                  banned_ids=tuple(w[0] for w in hf.get("bad_words_ids") or () if len(w) == 1))
    c.data.tokenizer = MarianTokenizer.kind
    return c


def bert_config(hf: dict, tensors: dict, tokenizer):
    """An llm_jax config (Bert + masked_lm, the family's pre-training recipe) for a BERT,
    RoBERTa or ALBERT directory."""
    family, fields = bert_interop.model_config(hf, tensors)
    c = default_config("bert", "masked_lm")
    c.model.update(fields)
    c.data.tokenizer = tokenizer.kind
    c.task.update(MASKED_LM_RECIPES[family])
    if fields["sentence_head"] != c.task.sentence_task:  # e.g. a BertModel without NSP head
        c.task.sentence_task = fields["sentence_head"]
    return family, c


def gpt2_config(hf: dict, tokenizer):
    """An llm_jax config (GPT + causal_lm) for a GPT-2 directory; the tokenizer is saved in the
    workdir, so training goes on with it whatever config.data names."""
    c = default_config("gpt", "causal_lm")
    c.model.update(gpt2.model_config(hf))
    c.data.tokenizer = tokenizer.kind
    c.data.seq_len = min(c.data.seq_len, c.model.max_len)
    return c


def _marian(hf_dir, hf):
    tensors = read_tensors(hf_dir)[0]
    config = marian_config(hf)
    return "marian", config, lambda shapes: marian.params_from_hf(tensors, config.model), \
        MarianTokenizer(hf_dir), f"{hf_dir}/vocab.json"


def _bert(hf_dir, hf):
    tensors, source = read_tensors(hf_dir)
    tokenizer = read_hf_tokenizer(hf_dir)
    family, config = bert_config(hf, tensors, tokenizer)
    return family, config, lambda shapes: bert_interop.params_from_hf(
        family, tensors, config.model, shapes, source), tokenizer, "the tokenizer"


def _gpt2(hf_dir, hf):
    tokenizer = read_hf_tokenizer(hf_dir, gpt2.FAMILY)
    config = gpt2_config(hf, tokenizer)  # an unsupported field fails before tensors are read
    tensors, source = read_tensors(hf_dir)
    return gpt2.FAMILY, config, lambda shapes: gpt2.params_from_hf(
        tensors, config.model, shapes, source), tokenizer, f"{hf_dir}/vocab.json"


def import_hf(hf_dir: str, workdir: str) -> dict:
    if os.path.isdir(workdir) and os.listdir(workdir):
        raise ValueError(f"--workdir={workdir} exists and is not empty: import-hf writes a new "
                         "workdir")
    hf = read_config(hf_dir)
    kind = hf.get("model_type", "marian")
    if kind == "marian":
        family, config, make_params, tokenizer, vocab = _marian(hf_dir, hf)
    elif kind in bert_interop.FAMILIES:
        family, config, make_params, tokenizer, vocab = _bert(hf_dir, hf)
    elif kind == gpt2.FAMILY:
        family, config, make_params, tokenizer, vocab = _gpt2(hf_dir, hf)
    else:
        raise ValueError(f"{hf_dir}/config.json: model_type={kind!r}; import-hf reads marian, "
                         f"{', '.join(bert_interop.FAMILIES)}, {gpt2.FAMILY}")
    if tokenizer.vocab_size > config.model.vocab_size:
        raise ValueError(f"{vocab} has {tokenizer.vocab_size} ids but config.json "
                         f"vocab_size={config.model.vocab_size}")
    tmp = os.path.join(os.path.dirname(os.path.abspath(workdir)),
                       f".{os.path.basename(os.path.abspath(workdir))}.partial-{os.getpid()}")
    try:
        os.makedirs(tmp)
        tokenizer.save(os.path.join(tmp, "tokenizer"))
        mesh = sharding.make_mesh(config.mesh)
        optimizer = make_optimizer(config.optimizer, 1, param_axes=model_param_axes(config.model))
        spec = make_state_spec(config.model, optimizer, mesh, config.seed)
        params = make_params(jax.tree.map(lambda a: a.shape, spec.abstract["params"]))
        state = spec.init()
        state["params"] = jax.tree.map(
            lambda x, s: jax.device_put(jnp.asarray(x, s.dtype), s.sharding), params,
            spec.abstract["params"])
        checkpointer = Checkpointer(os.path.join(tmp, "checkpoints"), keep=1)
        checkpointer.save(0, state, {})
        checkpointer.close()
        save_config(config, tmp)
        record = {"source": os.path.abspath(hf_dir), "format": family,
                  "params": spec.param_count}
        with open(os.path.join(tmp, IMPORT_FILE), "w") as f:
            json.dump(record, f, indent=2)
        if os.path.isdir(workdir):
            os.rmdir(workdir)  # empty, checked above
        os.replace(tmp, workdir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workdir": os.path.abspath(workdir), **record}
