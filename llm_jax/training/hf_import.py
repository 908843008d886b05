"""`import-hf`: a Hugging Face model directory as a new llm_jax workdir.

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

from llm_jax.data.marian_tokenizer import MarianTokenizer
from llm_jax.interop import marian
from llm_jax.training import sharding
from llm_jax.training.checkpoints import Checkpointer
from llm_jax.training.config_schema import default_config
from llm_jax.training.experiment import save_config
from llm_jax.training.optimizer import make_optimizer, model_param_axes
from llm_jax.training.state import make_state_spec

IMPORT_FILE = "imported_from.json"


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


def import_hf(hf_dir: str, workdir: str) -> dict:
    if os.path.isdir(workdir) and os.listdir(workdir):
        raise ValueError(f"--workdir={workdir} exists and is not empty: import-hf writes a new "
                         "workdir")
    hf, tensors = marian.read_hf_dir(hf_dir)
    config = marian_config(hf)
    params = marian.params_from_hf(tensors, config.model)
    tokenizer = MarianTokenizer(hf_dir)
    if tokenizer.vocab_size > config.model.vocab_size:
        raise ValueError(f"{hf_dir}/vocab.json has {tokenizer.vocab_size} ids but config.json "
                         f"vocab_size={config.model.vocab_size}")
    tmp = os.path.join(os.path.dirname(os.path.abspath(workdir)),
                       f".{os.path.basename(os.path.abspath(workdir))}.partial-{os.getpid()}")
    try:
        os.makedirs(tmp)
        tokenizer.save(os.path.join(tmp, "tokenizer"))
        mesh = sharding.make_mesh(config.mesh)
        optimizer = make_optimizer(config.optimizer, 1, param_axes=model_param_axes(config.model))
        spec = make_state_spec(config.model, optimizer, mesh, config.seed)
        state = spec.init()
        state["params"] = jax.tree.map(
            lambda x, s: jax.device_put(jnp.asarray(x, s.dtype), s.sharding), params,
            spec.abstract["params"])
        checkpointer = Checkpointer(os.path.join(tmp, "checkpoints"), keep=1)
        checkpointer.save(0, state, {})
        checkpointer.close()
        save_config(config, tmp)
        record = {"source": os.path.abspath(hf_dir), "format": "marian",
                  "params": spec.param_count}
        with open(os.path.join(tmp, IMPORT_FILE), "w") as f:
            json.dump(record, f, indent=2)
        if os.path.isdir(workdir):
            os.rmdir(workdir)  # empty, checked above
        os.replace(tmp, workdir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"workdir": os.path.abspath(workdir), **record}
