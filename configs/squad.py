"""SQuAD v1.1 extractive QA (tasks/span_qa.py) with BERT-mini, pre-trained by
configs/bert_wikitext2.py:mini, and the same model trained from scratch.

    python -m llm_jax train --config=configs/bert_wikitext2.py:mini --workdir=runs/bert_mini
    python -m llm_jax train --config=configs/squad.py:bert_mini \
        --config.init_from=runs/bert_mini --workdir=runs/squad_bert_mini
    python -m llm_jax train --config=configs/squad.py:scratch --workdir=runs/squad_scratch

The protocol by default is NOT the official one: it trains on the first 38 articles of
$LLM_JAX_DATA_DIR/squad/dev-v1.1.json (8,582 questions) and evaluates on its last 10 (1,988
questions), since the data directory holds only the dev set; its EM/F1 are not comparable with
published numbers. The official protocol trains on train-v1.1.json and evaluates on all of
dev-v1.1.json:
    --config.task.train_file=PATH/train-v1.1.json --config.task.eval_file=PATH/dev-v1.1.json
(the warm-up, 10% of the run's steps, follows the new step count by itself).

  bert_mini: model.name="finetune", the backbone exactly bert_wikitext2.py:mini's model (BERT-mini,
             Turc et al. 2019: 4 layers, 256 wide, 4 heads, FFN 1024; max_len 512, so that every
             pre-trained tensor has its shape), loaded from --config.init_from into "backbone/"
             (init_from_prefix); the pre-trained run's WordPiece vocabulary is read from its
             workdir. A span head (start and end logits per token, no dropout before it, as
             HF's qa_outputs) on the last layer, with Hugging Face run_qa.py's recipe: windows of
             384 tokens sharing 128 (doc_stride), questions cut to 64 tokens, 2 epochs, AdamW
             (weight decay 0.01, beta2 0.999, eps 1e-6, as BERT), linear warm-up over the first
             10% of steps and linear decay to 0, dropout 0.1. Batch 32 (run_qa.py's examples use
             12; BERT's paper 32). lr 1e-4 where run_qa.py gives bert-base 3e-5: Google's BERT
             miniatures (Turc et al.; google-research/bert's README) were fine-tuned on GLUE
             over {3e-4, 1e-4, 5e-5, 3e-5}, a 4-layer, 256-wide model taking larger steps than
             BERT-base without harm, and in 550 steps (8,792 windows x 2 epochs / 32) 3e-5
             would barely move a backbone pre-trained for only 2,000 steps and a span head that
             starts at random. Why 1e-4 and not the grid's top, 3e-4: caution, not a
             measurement; sweep --config.optimizer.lr to settle it. Answers are decoded with
             run_qa.py's n-best 20 and at most 30 tokens. Every eval answers every eval
             question, and the best checkpoint by eval/squad_f1 is kept in checkpoints_best/.
  hf:        bert_mini's recipe on any BERT workdir given as --config.init_from (import-hf of
             bert-base-uncased, or a run of our own such as RoBERTa-mini), the backbone's shape
             read from that workdir's config.json (init_from_model=True), at run_qa.py's lr
             3e-5 for bert-base; a RoBERTa workdir also needs --config.data.tokenizer=roberta_bpe
             (experiments/squad runs RoBERTa-mini so, at bert_mini's 1e-4).
  scratch:   the same model, data and recipe with no init_from: the from-scratch baseline (the
             shared bert-base-uncased vocabulary, as mini's pre-training used). Only the
             initialisation differs; a fair baseline may want its own learning rate.
  tiny:      a seconds-long smoke run for tests: 2 layers, 32 wide, windows of 128 tokens
             (stride 32, questions cut to 32), 40 steps of 16 windows, over 200 training
             questions and the first 40 eval questions (task.train_examples, eval_examples).

Warm-up is 10% of the run's steps (optimizer.warmup_fraction: of train.steps as resolved from
the epochs and the windows the run makes), whatever the training file or vocabulary. No early
stopping (train.early_stop_patience=0): run_qa.py's recipe trains a fixed 2 epochs, and the best
dev checkpoint is kept.
"""

from llm_jax.models import bert
from llm_jax.training.config_schema import default_config

VARIANTS = ("bert_mini", "hf", "scratch", "tiny")
EPOCHS, BATCH, WARMUP = 2, 32, 0.1


def get_config(arg=None):
    variant = arg or "bert_mini"
    if variant not in VARIANTS:
        raise ValueError(f"configs/squad.py:{arg}: unknown variant {variant!r}; expected one of "
                         f"{VARIANTS}")
    c = default_config("finetune", "span_qa")
    c.model.backbone.update(bert.size_config("bert_mini"))
    c.model.backbone.update(vocab_size=0)  # the tokenizer's
    c.model.update(head="span", num_labels=0, head_dropout=0.0, vocab_size=0)
    c.task.update(doc_stride=128, max_query_len=64, n_best=20, max_answer_len=30)
    c.data.update(tokenizer="wordpiece", vocab_file="", seq_len=384, train_split="train",
                  eval_split="valid", test_split="")
    c.optimizer.update(name="adamw", lr=1e-4, min_lr=0.0, schedule="linear",
                       warmup_steps=0, warmup_fraction=WARMUP, b1=0.9, b2=0.999, eps=1e-6,
                       weight_decay=0.01, grad_clip=1.0)
    # eval_batches covers the eval split (1,992 windows: 63 batches); its EM/F1 always do
    c.train.update(epochs=EPOCHS, batch_size=BATCH, log_every=25, eval_every=100,
                   eval_batches=1000, checkpoint_every=1000, best_metric="eval/squad_f1",
                   best_mode="max")
    if variant in ("bert_mini", "hf"):
        c.init_from_prefix = "backbone"  # with --config.init_from=PRE-TRAINED WORKDIR
    if variant == "hf":
        c.init_from_model = True  # model.backbone's shape: init_from's config.json
        c.optimizer.lr = 3e-5
    elif variant == "tiny":
        c.model.backbone.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, max_len=128,
                                dropout_rate=0.0, attention_dropout=0.0)
        c.task.update(doc_stride=32, max_query_len=32, train_examples=200, eval_examples=40)
        c.data.update(seq_len=128)
        c.optimizer.update(lr=5e-3, warmup_steps=4, warmup_fraction=0.0)
        c.train.update(epochs=0, steps=40, batch_size=16, log_every=5, eval_every=10,
                       eval_batches=2, checkpoint_every=20, progress_bar=False)
    return c
