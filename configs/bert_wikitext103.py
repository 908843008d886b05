"""Masked-LM pre-training on WikiText-103, for users with the data and a GPU.

WikiText-103 (Merity et al. 2016: 103M training words, about 50x WikiText-2) is not in the
shared data directory and `download` does not fetch it: put wiki.{train,valid,test}.tokens
under $LLM_JAX_DATA_DIR/wikitext-103/ (the layout of wikitext-103-v1.zip). The recipes are
configs/bert_wikitext2.py's, at the published sizes and budgets that fit one accelerator:

  mini:         BERT-mini with BERT's recipe (MLM + NSP, 10 static copies of the masks, the
                uncased WordPiece vocabulary) for 20,000 steps of 128 x 128, lr 5e-4
  base:         BERT-base (12 layers, 768 wide, 110M parameters) with BERT's phase-1 recipe
                (Devlin et al. 2019, appendix A.2): sequences of 128, batch 256, AdamW lr 1e-4
                with 10,000 warm-up steps and linear decay, dropout 0.1, 10 static copies of
                the masks (create_pretraining_data.py's dupe_factor), here 100,000 steps (BERT:
                900,000 on BooksCorpus + Wikipedia, then 100,000 at 512)
  roberta_base: RoBERTa-base with RoBERTa's recipe (MLM alone, FULL-SENTENCES, dynamic masks,
                GPT-2's byte-level BPE, Adam beta2 0.98) at batch 256, where fairseq's
                README.pretraining.md gives a peak lr of 1e-4; 100,000 steps of 128 tokens

    python -m llm_jax train --config=configs/bert_wikitext103.py:base --workdir=runs/bert_base_wt103

Each run evaluates on the valid split every 5,000 steps (50 batches) and on test at the end.
"""

import pathlib

from llm_jax.models import bert
from llm_jax.training.config_schema import config_from_file

VARIANTS = ("mini", "base", "roberta_base")
SHAPE = ("num_layers", "embed_dim", "num_heads", "mlp_dim", "embedding_dim")


def get_config(arg=None):
    arg = arg or "base"
    if arg not in VARIANTS:
        raise ValueError(f"configs/bert_wikitext103.py:{arg}: unknown variant; expected one of "
                         f"{VARIANTS}")
    c = config_from_file(pathlib.Path(__file__).with_name("bert_wikitext2.py"),
                         "roberta_mini" if arg.startswith("roberta") else "mini")
    c.data.corpus = "wikitext-103"
    steps, batch, lr, warmup, dupe = 100_000, 256, 1e-4, 10_000, 10
    if arg == "mini":
        steps, batch, lr, warmup = 20_000, 128, 5e-4, 2_000
    else:  # the published shape; the family's other fields are already the recipe's
        size = bert.size_config("roberta_base" if arg == "roberta_base" else "bert_base")
        c.model.update({k: size[k] for k in SHAPE})
    if c.task.masking == "static":
        c.task.dupe_factor = dupe
    c.optimizer.update(lr=lr, warmup_steps=warmup)
    c.train.update(steps=steps, batch_size=batch, eval_every=5_000, eval_batches=50,
                   checkpoint_every=5_000)
    return c
