"""`export-hf`: a BERT/RoBERTa/ALBERT or GPT-2 workdir as a Hugging Face model directory.

It holds config.json, model.safetensors and the tokenizer's files, so that
`transformers.AutoModelForPreTraining.from_pretrained(OUT)` (GPT-2: `AutoModelForCausalLM`, or
the class named in config.json's `architectures`) and `AutoTokenizer.from_pretrained(OUT)`
rebuild the model with the same logits and ids. A GPT's embedding is exported whole, padding
rows included (config.json's vocab_size is 50304 for configs/gpt2.py; see interop/gpt2.py).
It is written beside OUT and renamed into place when complete; an existing non-empty OUT is
never written into.
"""

import os
import shutil

from flax import nnx

from llm_jax.data.gpt2_tokenizer import GPT2BPETokenizer
from llm_jax.data.hf_tokenizer_files import write_hf_tokenizer
from llm_jax.interop import bert as bert_interop
from llm_jax.interop import gpt2
from llm_jax.interop.hf_files import write_dir


def _bert(params, tokenizer, config):
    family, tensors = bert_interop.params_to_hf(params, config.model)
    ids = tokenizer.special_ids
    hf_config = bert_interop.hf_config(config.model, {
        "pad": ids.get("pad"), "bos": ids.get("cls"), "eos": ids.get("sep")})
    if family == "roberta" and ids.get("pad") != config.model.pad_position:
        raise ValueError(f"export-hf: RoBERTa counts positions past its pad id, but the tokenizer's "
                         f"pad id {ids.get('pad')} != model.pad_position={config.model.pad_position}")
    return family, hf_config, tensors


def _gpt2(params, tokenizer, config):
    if tokenizer.kind != GPT2BPETokenizer.kind:
        # before anything is written: a char or SentencePiece GPT has no transformers tokenizer
        raise ValueError(f"export-hf: a GPT exports as GPT-2 with data.tokenizer="
                         f"{GPT2BPETokenizer.kind!r}; this workdir's tokenizer is "
                         f"{tokenizer.kind!r}")
    return gpt2.FAMILY, gpt2.hf_config(config.model, tokenizer.eos_id), \
        gpt2.params_to_hf(params, config.model)


EXPORTERS = {"bert": _bert, "gpt": _gpt2}


def export_hf(model, tokenizer, config, out_dir: str) -> dict:
    if config.model.name not in EXPORTERS:
        raise ValueError(f"export-hf writes BERT, RoBERTa, ALBERT (model.name='bert') and GPT-2 "
                         f"(model.name='gpt') workdirs; this one has model.name="
                         f"{config.model.name!r}")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise ValueError(f"--out={out_dir} exists and is not empty: export-hf writes a new "
                         "directory")
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    family, hf_config, tensors = EXPORTERS[config.model.name](params, tokenizer, config)
    parent, name = os.path.split(os.path.abspath(out_dir))
    tmp = os.path.join(parent, f".{name}.partial-{os.getpid()}")
    try:
        write_dir(tmp, hf_config, tensors)
        write_hf_tokenizer(tokenizer, tmp)
        if os.path.isdir(out_dir):
            os.rmdir(out_dir)  # empty, checked above
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": os.path.abspath(out_dir), "family": family,
            "architecture": hf_config["architectures"][0], "tensors": len(tensors)}
