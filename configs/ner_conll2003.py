"""CoNLL-2003 NER fine-tuning of BERT-mini, pre-trained by configs/bert_wikitext2.py:mini, and the
same model trained from scratch (tasks/tagging.py).

    python -m llm_jax train --config=configs/bert_wikitext2.py:mini --workdir=runs/bert_mini
    python -m llm_jax train --config=configs/ner_conll2003.py:bert_mini \
        --config.init_from=runs/bert_mini --workdir=runs/ner_bert_mini
    python -m llm_jax train --config=configs/ner_conll2003.py:scratch --workdir=runs/ner_scratch

  bert_mini: model.name="finetune", the backbone exactly bert_wikitext2.py:mini's model
             (BERT-mini: 4 layers, 256 wide, 4 heads, FFN 1024, max_len 512, so that every
             pre-trained tensor has its shape), loaded from --config.init_from into "backbone/"
             (init_from_prefix); the pre-trained run's WordPiece vocabulary is read from its
             workdir. A token head on the last layer, each word labelled at its first sub-word
             (Devlin et al. 2019, section 5.3), with BERT's fine-tuning recipe (section 4 and
             appendix A.3): AdamW (weight decay 0.01, beta2 0.999, eps 1e-6), lr 5e-5, batch 32,
             3 epochs, linear warm-up over the first 10% of steps and linear decay to 0, dropout
             0.1, 128 sub-words (with bert-base-uncased's pieces that cuts 1 training sentence by
             24 words and 3 dev sentences by 19: cut words are tagged "O" at eval and counted
             as eval/ner_cut_words). The best checkpoint
             by dev entity F1 (eval/ner_f1, conlleval's reading; task.strict=True for seqeval's
             strict IOB2) is kept in checkpoints_best/; the test split is scored at the end
             with the last state.
  hf:        bert_mini's recipe (BERT's, lr 5e-5) on any BERT workdir given as
             --config.init_from (import-hf of bert-base-cased, or a run of our own such as
             RoBERTa-mini), the backbone's shape read from that workdir's config.json
             (init_from_model=True); a RoBERTa workdir also needs
             --config.data.tokenizer=roberta_bpe.
  scratch:   the same model, data and recipe with no init_from: the from-scratch baseline (the
             shared bert-base-uncased vocabulary, as mini's pre-training used).
  tiny:      a seconds-long smoke run for tests (2 layers, 32 wide, 20 steps of 8 sentences;
             point task.train_file / eval_file at small CoNLL-format files).

Warm-up is 10% of the run's steps (optimizer.warmup_fraction), so it follows task.train_examples
or another task.train_file by itself. No early stopping (train.early_stop_patience=0): BERT's
recipe trains a fixed 3 epochs and keeps the best dev checkpoint.
"""

from llm_jax.models import bert
from llm_jax.training.config_schema import default_config

VARIANTS = ("bert_mini", "hf", "scratch", "tiny")
NUM_TAGS = 10            # tag_names: O, UNK, B-/I- of LOC, MISC, ORG, PER
EPOCHS, BATCH, WARMUP = 3, 32, 0.1


def get_config(arg=None):
    variant = arg or "bert_mini"
    if variant not in VARIANTS:
        raise ValueError(f"configs/ner_conll2003.py:{arg}: unknown variant {variant!r}; expected "
                         f"one of {VARIANTS}")
    c = default_config("finetune", "token_tagging")
    c.model.backbone.update(bert.size_config("bert_mini"))
    c.model.backbone.update(vocab_size=0)  # the tokenizer's
    c.model.update(head="token", num_labels=NUM_TAGS, head_dropout=0.1, vocab_size=0)
    c.data.update(tokenizer="wordpiece", vocab_file="", seq_len=128, train_split="train",
                  eval_split="valid", test_split="test")
    c.optimizer.update(name="adamw", lr=5e-5, min_lr=0.0, schedule="linear",
                       warmup_steps=0, warmup_fraction=WARMUP, b1=0.9, b2=0.999, eps=1e-6,
                       weight_decay=0.01, grad_clip=1.0)
    # eval_batches covers the dev split's 3,250 sentences (102 batches): the eval loss is over
    # the whole split, as the entity scores are
    c.train.update(epochs=EPOCHS, batch_size=BATCH, log_every=50, eval_every=200,
                   eval_batches=1000, checkpoint_every=1000, best_metric="eval/ner_f1",
                   best_mode="max")
    if variant in ("bert_mini", "hf"):
        c.init_from_prefix = "backbone"  # with --config.init_from=PRE-TRAINED WORKDIR
    if variant == "hf":
        c.init_from_model = True  # model.backbone's shape: init_from's config.json
    elif variant == "tiny":
        c.model.backbone.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, max_len=64,
                                dropout_rate=0.0, attention_dropout=0.0)
        c.model.head_dropout = 0.0
        c.data.update(seq_len=24, test_split="")
        c.optimizer.update(lr=1e-2, warmup_steps=3, warmup_fraction=0.0)
        c.train.update(epochs=0, steps=20, batch_size=8, log_every=5, eval_every=5,
                       eval_batches=4, checkpoint_every=20, progress_bar=False)
    return c
