"""`export-hf`: a BERT/RoBERTa/ALBERT workdir as a Hugging Face model directory.

It holds config.json, model.safetensors and the tokenizer's files, so that
`transformers.AutoModelForPreTraining.from_pretrained(OUT)` (or the class named in
config.json's `architectures`) and `AutoTokenizer.from_pretrained(OUT)` rebuild the model
with the same logits and ids. It is written beside OUT and renamed into place when complete;
an existing non-empty OUT is never written into.
"""

import os
import shutil

from flax import nnx

from llm_jax.data.hf_tokenizer_files import write_hf_tokenizer
from llm_jax.interop import bert as bert_interop
from llm_jax.interop.hf_files import write_dir


def export_hf(model, tokenizer, config, out_dir: str) -> dict:
    if config.model.name != "bert":
        raise ValueError(f"export-hf writes BERT, RoBERTa and ALBERT workdirs (model.name="
                         f"'bert'); this one has model.name={config.model.name!r}")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise ValueError(f"--out={out_dir} exists and is not empty: export-hf writes a new "
                         "directory")
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    family, tensors = bert_interop.params_to_hf(params, config.model)
    ids = tokenizer.special_ids
    hf_config = bert_interop.hf_config(config.model, {
        "pad": ids.get("pad"), "bos": ids.get("cls"), "eos": ids.get("sep")})
    if family == "roberta" and ids.get("pad") != config.model.pad_position:
        raise ValueError(f"export-hf: RoBERTa counts positions past its pad id, but the tokenizer's "
                         f"pad id {ids.get('pad')} != model.pad_position={config.model.pad_position}")
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
