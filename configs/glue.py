"""GLUE fine-tuning of BERT-mini, pre-trained by configs/bert_wikitext2.py:mini, and the same
model trained from scratch.

    python -m llm_jax train --config=configs/bert_wikitext2.py:mini --workdir=runs/bert_mini
    python -m llm_jax train --config=configs/glue.py:bert_mini,cola \
        --config.init_from=runs/bert_mini --workdir=runs/glue_cola_bert_mini
    python -m llm_jax train --config=configs/glue.py:scratch,cola --workdir=runs/glue_cola_scratch
    python -m llm_jax import-hf --from=HF_DIR --workdir=runs/bert_base_uncased
    python -m llm_jax train --config=configs/glue.py:hf,sst2 \
        --config.init_from=runs/bert_base_uncased --workdir=runs/glue_sst2_bert_base

The argument is VARIANT[,TASK], TASK one of sst2 (the default), cola, mrpc, stsb, rte, wnli,
qnli (QNLI's train.tsv is not in the shared data directory: give task.train_file).
  bert_mini: model.name="finetune", the backbone exactly bert_wikitext2.py:mini's model (BERT-mini,
             Turc et al. 2019: 4 layers, 256 wide, 4 heads, FFN 1024; max_len 512, so that every
             pre-trained tensor, the position table included, has its shape), loaded from
             --config.init_from into "backbone/" (init_from_prefix); the pre-trained run's
             WordPiece vocabulary is read from its workdir. A classification head on the
             pooled [CLS] (one score for STS-B), with BERT's fine-tuning recipe (Devlin et
             al. 2019, section 4 and appendix A.3): AdamW (weight decay 0.01, beta2 0.999,
             eps 1e-6), batch 32, 3 epochs, linear warm-up over the first 10% of steps and
             linear decay to 0, dropout 0.1, sequences of 128 tokens. The learning rate is
             5e-5, the top of BERT's grid {2, 3, 4, 5}e-5: the small BERTs of Turc et al.
             fine-tune best at the larger rates of their grid (up to 1e-4), a 4-layer model
             taking less harm from large steps than BERT-base, and a model pre-trained for
             only 2,000 steps has further to move. The best checkpoint by the dev set's GLUE
             metric (eval/glue_score: Matthews correlation for CoLA, F1/accuracy mean for MRPC,
             Pearson/Spearman mean for STS-B, accuracy otherwise) is kept in
             checkpoints_best/; every eval scores the whole dev set.
  hf:        bert_mini's recipe on any BERT workdir given as --config.init_from (import-hf of a
             Hugging Face checkpoint such as bert-base-uncased, or a run of our own), the
             backbone's shape read from that workdir's config.json (init_from_model=True:
             training/init_from.py; dropout and dtype stay this config's), its WordPiece
             vocabulary from its tokenizer/. lr 2e-5, the rate of Hugging Face's run_glue.py
             examples (and of BERT's grid {2, 3, 4, 5}e-5) for bert-base. A RoBERTa or ALBERT
             workdir also needs --config.data.tokenizer=roberta_bpe / albert_sp.
  scratch:   the same model, data and recipe with no init_from: the from-scratch baseline
             (the shared bert-base-uncased vocabulary, as mini's pre-training used). Only the
             initialisation differs; a fair baseline may want its own learning rate
             (--config.optimizer.lr).
  tiny:      a seconds-long smoke run for tests (2 layers, 32 wide, 50 steps of 16 rows; point
             task.train_file / eval_file at small TSVs).
  gpt:       GPT-1's fine-tuning recipe (Radford et al. 2018, section 4.1) on the backbone
             exactly gpt_shakespeare.py:cpu's model (4 layers, 128 wide, max_len 64; char
             vocabulary: the pre-trained run's, from --config.init_from), loaded into
             "backbone/": start + A [+ delimiter + B] + extract, the classifier on the extract
             token's state, the auxiliary LM loss with weight 0.5, dropout 0.1, lr 6.25e-5,
             batch 32, 3 epochs, linear warm-up over 0.2% of the steps and linear decay to 0.
             Sequences of 64 characters (the pre-trained position table's length).
  gpt_tiny:  a seconds-long smoke run on gpt_shakespeare.py:tiny's model (2 layers, 32 wide).
  elmo:      a frozen biLM exactly elmo.py:small's model (from --config.init_from), a trainable
             ScalarMix of its 3 layers, the mean of the mixed vectors over the words, and the
             classification head (the ELMo paper's SST-5 model, a biattentive classification
             network, is not this); Adam lr 1e-3, batch 32, 3 epochs, 64 words.
  elmo_tiny: a seconds-long smoke run on elmo.py:tiny's model (frozen).

Warm-up is a share of the run's steps (optimizer.warmup_fraction), so it follows
task.train_examples or another task.train_file by itself. No variant stops early
(train.early_stop_patience=0): BERT's and GPT-1's recipes train a fixed 3 epochs and keep the
best dev checkpoint.
"""

from llm_jax.data.glue_data import LABEL_NAMES, TASKS
from llm_jax.models import bert, elmo, gpt
from llm_jax.training.config_schema import default_config
from llm_jax.training.optimizer import param_group

VARIANTS = ("bert_mini", "hf", "scratch", "tiny", "gpt", "gpt_tiny", "elmo", "elmo_tiny")
EPOCHS, BATCH, WARMUP = 3, 32, 0.1


def get_config(arg=None):
    variant, _, task = (arg or "bert_mini").partition(",")
    task = task or "sst2"
    if variant not in VARIANTS:
        raise ValueError(f"configs/glue.py:{arg}: unknown variant {variant!r}; expected one of "
                         f"{VARIANTS}")
    if task not in TASKS:
        raise ValueError(f"configs/glue.py:{arg}: unknown GLUE task {task!r}; expected one of "
                         f"{TASKS}")
    c = default_config("finetune", "glue")
    c.model.backbone.update(bert.size_config("bert_mini"))
    c.model.backbone.update(vocab_size=0)  # the tokenizer's
    labels = LABEL_NAMES[task]
    c.model.update(head="classification", num_labels=1 if labels is None else len(labels),
                   head_dropout=0.1, vocab_size=0)
    c.task.update(glue_task=task)
    c.data.update(tokenizer="wordpiece", vocab_file="", seq_len=128, train_split="train",
                  eval_split="valid", test_split="")
    c.optimizer.update(name="adamw", lr=5e-5, min_lr=0.0, schedule="linear",
                       warmup_steps=0, warmup_fraction=WARMUP, b1=0.9, b2=0.999, eps=1e-6,
                       weight_decay=0.01, grad_clip=1.0)
    # eval_batches covers any GLUE dev set (QNLI's 5,463 rows are 171 batches): every eval
    # reads the whole split, as the GLUE metric does
    c.train.update(epochs=EPOCHS, batch_size=BATCH, log_every=50, eval_every=500,
                   eval_batches=1000, checkpoint_every=1000, best_metric="eval/glue_score",
                   best_mode="max")
    if variant.startswith("gpt"):
        with c.unlocked():
            c.model.backbone = gpt.default_config()
        # gpt_shakespeare.py:cpu's model (tiny: its tiny's); dropout is fine-tuning's (GPT-1: 0.1)
        c.model.backbone.update(variant="gpt2", num_layers=4, num_heads=4, embed_dim=128,
                                max_len=64, use_bias=False, activation="gelu", scan_layers=False,
                                dropout_rate=0.1, dtype="float32", vocab_size=0)
        c.task.lm_loss_weight = 0.5
        c.data.update(tokenizer="char", seq_len=64)
        c.optimizer.update(lr=6.25e-5, warmup_fraction=0.002)
        if variant == "gpt":
            c.init_from_prefix = "backbone"
        else:
            c.model.backbone.update(num_layers=2, num_heads=2, embed_dim=32, max_len=32,
                                    scan_layers=True, dropout_rate=0.0)
    elif variant.startswith("elmo"):
        with c.unlocked():
            c.model.backbone = elmo.default_config()
        # elmo.py:small's model (tiny: its tiny's); frozen, so its dropout never runs
        c.model.backbone.update(max_chars=20, char_filters=((1, 16), (2, 16), (3, 32), (4, 64)),
                                num_highway=1, proj_dim=128, hidden_dim=256, dropout_rate=0.1,
                                vocab_size=0)
        c.model.update(freeze_backbone=True, elmo_pool="mean")
        c.data.update(tokenizer="word", seq_len=64)
        c.optimizer.update(lr=1e-3, weight_decay=0.0,
                           param_groups=(param_group("^backbone/", frozen=True),))
        if variant == "elmo":
            c.init_from_prefix = "backbone"
        else:
            c.model.backbone.update(max_chars=12, char_filters=((1, 8), (2, 8), (3, 16)),
                                    char_dim=8, num_highway=1, proj_dim=16, hidden_dim=32,
                                    dropout_rate=0.0)
    if variant.endswith("_tiny"):
        c.model.head_dropout = 0.0
        c.data.update(seq_len=16 if variant == "elmo_tiny" else 32)
        c.optimizer.update(lr=1e-2, warmup_steps=3, warmup_fraction=0.0)
        c.train.update(epochs=0, steps=50, batch_size=16, log_every=5, eval_every=10,
                       eval_batches=2, checkpoint_every=25, progress_bar=False)
    c.lock()
    if variant in ("bert_mini", "hf"):
        c.init_from_prefix = "backbone"  # with --config.init_from=PRE-TRAINED WORKDIR
    if variant == "hf":
        c.init_from_model = True  # model.backbone's shape: init_from's config.json
        c.optimizer.lr = 2e-5
    elif variant == "tiny":
        c.model.backbone.update(num_layers=2, embed_dim=32, num_heads=2, mlp_dim=64, max_len=64,
                                dropout_rate=0.0, attention_dropout=0.0)
        c.model.head_dropout = 0.0
        c.data.update(seq_len=16)
        c.optimizer.update(lr=1e-2, warmup_steps=3, warmup_fraction=0.0)
        c.train.update(epochs=0, steps=50, batch_size=16, log_every=5, eval_every=10,
                       eval_batches=2, checkpoint_every=25, progress_bar=False)
    return c
