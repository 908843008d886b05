"""Masked-LM pre-training of small BERT, RoBERTa and ALBERT encoders on WikiText-2.

  mini:         BERT-mini (Turc et al., 2019: 4 layers, 256 wide, 4 heads, FFN 1024) with
                BERT's recipe: MLM + NSP, sentence pairs, static masks (5 copies of the
                corpus, each with its own pairs and masks), the uncased WordPiece vocabulary
  roberta_mini: the same shape and budget with RoBERTa's recipe: MLM alone, FULL-SENTENCES
                packing, dynamic masking, GPT-2's byte-level BPE, no pooler or sentence head,
                positions counted past the padding index, Adam beta2 0.98
  albert_mini:  the same shape with ALBERT's: one layer's weights shared by all 4, embeddings
                of 128 projected to 256, sentence-order prediction, no dropout, tanh-GELU
                (AdamW here where ALBERT used LAMB; the WordPiece vocabulary, not a
                SentencePiece one, so that it differs from mini in the model alone)
  tiny:         a seconds-long smoke run for tests (point data.corpus at a small directory)

Every variant trains at sequence length 128 with AdamW (weight decay 0.01), linear warm-up
over the first 10% of steps and linear decay to 0, as BERT. The mini variants share one
budget, 2,000 steps of 32 sequences (8.2M positions, about 3.5 passes over WikiText-2's 2.3M
training tokens), sized for about an hour on a 2-core CPU: timed there with other jobs
using most of both cores (load ~7), a step took 1.67 s for mini (2,400 real tokens/s), 1.98 s
for roberta_mini (1,750 tokens/s; a 50k vocabulary) and 1.25 s for albert_mini (3,100
tokens/s), so about 56, 66 and 42 minutes plus evaluation; an idle machine is faster.
"""

from llm_jax.models import bert
from llm_jax.training.config_schema import default_config

VARIANTS = ("mini", "roberta_mini", "albert_mini", "tiny")


def get_config(arg=None):
    arg = arg or "mini"
    if arg not in VARIANTS:
        raise ValueError(f"configs/bert_wikitext2.py:{arg}: unknown variant; expected one of "
                         f"{VARIANTS}")
    c = default_config("bert", "masked_lm")
    c.model.update(bert.size_config("bert_mini"))
    c.model.update(vocab_size=0)  # the tokenizer's
    c.data.update(corpus="wikitext-2", train_split="train", eval_split="valid",
                  test_split="test", tokenizer="wordpiece", vocab_file="", seq_len=128)
    c.task.update(sentence_task="nsp", packing="pairs", masking="static", dupe_factor=5,
                  mask_prob=0.15, short_seq_prob=0.1, text_format="wikitext")
    steps = 2000
    c.optimizer.update(name="adamw", lr=5e-4, min_lr=0.0, schedule="linear",
                       warmup_steps=steps // 10, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01,
                       grad_clip=1.0)
    c.train.update(steps=steps, batch_size=32, log_every=25, eval_every=500, eval_batches=16,
                   checkpoint_every=250)
    if arg == "roberta_mini":
        c.model.update(type_vocab_size=1, ln_eps=1e-5, position_ids="cumsum_mask",
                       pad_position=1, max_len=514, pooler=False, sentence_head="")
        c.data.update(tokenizer="roberta_bpe")
        c.task.update(sentence_task="", packing="full_sentences", masking="dynamic",
                      dupe_factor=1)
        c.optimizer.update(b2=0.98)
    elif arg == "albert_mini":
        albert = bert.size_config("albert_base")
        c.model.update(shared_layers=True, embedding_dim=128, sentence_head="sop",
                       activation=albert.activation, dropout_rate=albert.dropout_rate,
                       attention_dropout=albert.attention_dropout,
                       classifier_dropout=albert.classifier_dropout)
        c.task.update(sentence_task="sop")
    elif arg == "tiny":
        c.model.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, max_len=64,
                       dropout_rate=0.0, attention_dropout=0.0)
        c.data.update(seq_len=32, test_split="")
        c.task.update(dupe_factor=2)
        c.optimizer.update(lr=3e-3, warmup_steps=3)
        c.train.update(steps=30, batch_size=8, log_every=5, eval_every=15, eval_batches=2,
                       checkpoint_every=15, progress_bar=False)
    return c
