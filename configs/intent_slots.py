"""ATIS and SNIPS joint intent detection and slot filling (JointBERT, Chen et al. 2019) of
BERT-mini, pre-trained by configs/bert_wikitext2.py:mini, and the same model from scratch
(tasks/intent_slots.py).

    python -m llm_jax train --config=configs/bert_wikitext2.py:mini --workdir=runs/bert_mini
    python -m llm_jax train --config=configs/intent_slots.py:bert_mini,atis \
        --config.init_from=runs/bert_mini --workdir=runs/atis_bert_mini
    python -m llm_jax train --config=configs/intent_slots.py:scratch,snips --workdir=runs/snips_scratch

The argument is VARIANT[,CORPUS], CORPUS atis (the default) or snips.
  bert_mini: model.name="finetune", the backbone exactly bert_wikitext2.py:mini's model
             (BERT-mini: 4 layers, 256 wide, 4 heads, FFN 1024, max_len 512), loaded from
             --config.init_from into "backbone/" (init_from_prefix), with the pre-trained run's
             WordPiece vocabulary. The intent from the pooled [CLS], slot tags from each word's
             first sub-word, and JointBERT's recipe (its README's and main.py's defaults):
             AdamW without weight decay (eps 1e-8), batch 32, no warm-up and linear decay to
             0, gradient norm clipped at 1, dropout 0.1, 50 sub-words, loss = intent CE + 1.0
             * slot loss (task.slot_loss_coef), with its --use_crf: a CRF over the slot tags
             (model.crf: the slot loss is the utterance's CRF NLL, tags decoded by Viterbi).
             20 epochs, not JointBERT's 10. The CRF and the 20 epochs were chosen together on
             ATIS dev sentence accuracy: 82.2 with 10 epochs and a softmax, 86.8 with both
             (experiments/atis_snips/README.md, "Recipe"). Every eval scores the whole dev
             split (eval/intent_accuracy, eval/slot_f1, eval/sentence_accuracy); the best
             checkpoint by sentence accuracy, the metric that needs both parts right, is kept in
             checkpoints_best/ (JointBERT keeps its last); the test split is scored at the end
             with the last state. lr 1e-3, not JointBERT's 5e-5 (for bert-base), chosen on
             ATIS dev sentence accuracy from {5e-5, 3e-4, 1e-3}: 29.2, 76.4 and 82.2
             (experiments/atis_snips/README.md, "Learning rate"); at 5e-5 a backbone
             pre-trained for only 2,000 steps and two heads from random weights barely move in
             1,400 steps (10 epochs).
  hf:        bert_mini's recipe on any BERT workdir given as --config.init_from (import-hf of
             bert-base-uncased, or a run of our own such as RoBERTa-mini), the backbone's shape
             read from that workdir's config.json (init_from_model=True), at JointBERT's lr
             5e-5 (for bert-base); a RoBERTa workdir also needs
             --config.data.tokenizer=roberta_bpe (experiments/atis_snips runs RoBERTa-mini so,
             at bert_mini's 1e-3).
  scratch:   the same model, data and recipe (lr 1e-3 too) with no init_from (the shared
             bert-base-uncased vocabulary, as mini's pre-training used).
  tiny:      a seconds-long smoke run for tests (2 layers, 32 wide, no CRF, 80 steps of 16
             utterances; point task.train_dir / eval_dir at small folders, and set
             model.num_labels and num_intents to their vocabularies).
"""

from llm_jax.data.tagging_data import INTENT_CORPORA
from llm_jax.models import bert
from llm_jax.training.config_schema import default_config

VARIANTS = ("bert_mini", "hf", "scratch", "tiny")
# (intents, slot tags) of tagging_data.intent_names / tag_names of each training split ("UNK"
# included; JointBERT's lists have a "PAD" slot tag more), and its number of utterances
LABEL_SIZES = {"atis": (22, 121), "snips": (8, 73)}
TRAIN_UTTERANCES = {"atis": 4478, "snips": 13084}
EPOCHS, BATCH = 20, 32


def get_config(arg=None):
    variant, _, corpus = (arg or "bert_mini").partition(",")
    corpus = corpus or "atis"
    if variant not in VARIANTS:
        raise ValueError(f"configs/intent_slots.py:{arg}: unknown variant {variant!r}; expected "
                         f"one of {VARIANTS}")
    if corpus not in INTENT_CORPORA:
        raise ValueError(f"configs/intent_slots.py:{arg}: unknown corpus {corpus!r}; expected one "
                         f"of {INTENT_CORPORA}")
    c = default_config("finetune", "intent_slots")
    c.model.backbone.update(bert.size_config("bert_mini"))
    c.model.backbone.update(vocab_size=0)  # the tokenizer's
    intents, tags = LABEL_SIZES[corpus]
    c.model.update(head="intent_slot", num_labels=tags, num_intents=intents, head_dropout=0.1,
                   vocab_size=0, crf=True)
    c.task.update(corpus=corpus, slot_loss_coef=1.0)
    c.data.update(tokenizer="wordpiece", vocab_file="", seq_len=50, train_split="train",
                  eval_split="valid", test_split="test")
    c.optimizer.update(name="adamw", lr=1e-3, min_lr=0.0, schedule="linear", warmup_steps=0,
                       b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, grad_clip=1.0)
    # JointBERT evaluates every 200 steps; eval_batches covers either dev split (700 at most).
    # No early stopping (train.early_stop_patience stays 0): the recipe trains a fixed 20 epochs.
    c.train.update(epochs=EPOCHS, batch_size=BATCH, log_every=50, eval_every=200,
                   eval_batches=1000, checkpoint_every=1000, best_metric="eval/sentence_accuracy",
                   best_mode="max")
    if variant in ("bert_mini", "hf"):
        c.init_from_prefix = "backbone"  # with --config.init_from=PRE-TRAINED WORKDIR
    if variant == "hf":
        c.init_from_model = True  # model.backbone's shape: init_from's config.json
        c.optimizer.lr = 5e-5
    elif variant == "tiny":
        c.model.backbone.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, max_len=64,
                                dropout_rate=0.0, attention_dropout=0.0)
        c.model.update(head_dropout=0.0, crf=False)  # the softmax path; tests switch the CRF on
        c.data.update(seq_len=16, test_split="")
        c.optimizer.update(lr=1e-2, warmup_steps=3)
        # a random encoder learns the slots first and the pooled intent after them: 80 steps
        # (compiling takes most of the run's seconds on a CPU, not the steps)
        c.train.update(epochs=0, steps=80, batch_size=16, log_every=10, eval_every=20,
                       eval_batches=4, checkpoint_every=80, progress_bar=False)
    return c
