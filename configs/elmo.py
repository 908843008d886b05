"""ELMo biLM pre-training on WikiText-2 (word targets, character inputs).

  small: char-CNN of 128 filters (widths 1-4), 1 highway layer, 2 LSTM layers of 256 cells
         projected to 128, vocabulary of the words seen >= 5 times (23,380), windows of 20
         words, sampled softmax (1,024 negatives), 3,000 steps of 32 windows (about one epoch);
         see experiments/elmo_sst2/README.md for its time and validation perplexity.
  paper: shaped like the released 2x4096/512 model (char-CNN 2,048 filters of widths 1-7,
         2 highway layers, LSTMs of 4,096 cells projected to 512, cell/projection clip 3,
         dropout 0.1, sampled softmax of 8,192; 93.6M parameters outside the softmax), on the
         full WikiText-2 vocabulary; for a GPU (not run here).
  tiny:  a seconds-long smoke run for tests.

  python -m llm_jax train --config=configs/elmo.py:small --workdir=runs/elmo_small
"""

from llm_jax.training.config_schema import default_config

VARIANTS = ("small", "paper", "tiny")


def get_config(arg=None):
    arg = arg or "small"
    if arg not in VARIANTS:
        raise ValueError(f"configs/elmo.py:{arg}: unknown variant; expected one of {VARIANTS}")
    c = default_config("elmo", "bilm")
    c.data.update(corpus="wikitext-2", tokenizer="word", min_count=1, seq_len=20)
    c.task.update(softmax="sampled", num_sampled=8192)
    # The paper trained with Adagrad (lr 0.2); Adam with a short warm-up reaches a comparable
    # loss in far fewer steps, which is what a CPU run needs.
    c.optimizer.update(name="adamw", lr=1e-3, min_lr=1e-4, warmup_steps=200, b2=0.999,
                       weight_decay=0.0, grad_clip=10.0)
    c.train.update(steps=20000, batch_size=128, eval_every=1000, eval_batches=50,
                   checkpoint_every=1000, log_every=50)
    if arg == "small":
        c.model.update(max_chars=20, char_filters=((1, 16), (2, 16), (3, 32), (4, 64)),
                       num_highway=1, proj_dim=128, hidden_dim=256, dropout_rate=0.1)
        c.data.min_count = 5
        c.task.num_sampled = 1024
        c.optimizer.update(lr=3e-3, min_lr=3e-4, warmup_steps=100, grad_clip=5.0)
        c.train.update(steps=3000, batch_size=32, eval_every=500, eval_batches=10,
                       checkpoint_every=500, log_every=50)
    elif arg == "tiny":
        c.model.update(max_chars=12, char_filters=((1, 8), (2, 8), (3, 16)), char_dim=8,
                       num_highway=1, proj_dim=16, hidden_dim=32, dropout_rate=0.0)
        c.data.update(min_count=20, seq_len=8)
        c.task.num_sampled = 64
        c.optimizer.update(lr=3e-3, warmup_steps=2)
        c.train.update(steps=6, batch_size=4, eval_every=3, eval_batches=2, checkpoint_every=3,
                       log_every=1)
    return c
