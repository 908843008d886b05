"""Recurrent LMs on Penn Treebank: the settings of Zaremba et al. (2014) / TF's ptb_word_lm.py.

  zaremba_small:  2 x 200 LSTM, unroll 20, batch 20, no dropout, init +-0.1, lr 1.0, x0.5 per
                  epoch after epoch 4, clip 5, 13 epochs          (paper: valid 120.7, test 114.5)
  zaremba_medium: 2 x 650, unroll 35, dropout 0.5, init +-0.05, x0.8 after epoch 6, 39 epochs
                  (82.7 test)
  zaremba_large:  2 x 1500, unroll 35, dropout 0.65, init +-0.04, x1/1.15 after epoch 14,
                  55 epochs, clip 10                               (78.4 test)
  gru, rnn:       zaremba_small with a GRU (lr 0.3) / a tanh Elman cell (lr 0.1)
  tiny:           a seconds-long smoke run (trains on PTB's valid split, scores test)

As in ptb_word_lm.py the differentiated cost is the NLL summed over the unrolled steps and
averaged over the batch (task.sum_over_time); lr 1.0 assumes it. Validation and test are scored
with one stream (the paper's test setting; its validation used the 20 training streams),
carrying the state across the whole split.
"""

from llm_jax.training.config_schema import default_config

VARIANTS = ("zaremba_small", "zaremba_medium", "zaremba_large", "gru", "rnn", "tiny")


def get_config(arg=None):
    arg = arg or "zaremba_small"
    if arg not in VARIANTS:
        raise ValueError(f"configs/rnn_lm.py:{arg}: unknown variant; expected one of {VARIANTS}")
    c = default_config("rnn_lm", "stream_lm")
    c.data.update(corpus="ptb", tokenizer="word", min_count=1, seq_len=20,
                  train_split="train", eval_split="valid", test_split="test")
    c.model.update(cell="lstm", hidden_dim=200, num_layers=2, dropout_rate=0.0, init_scale=0.1)
    c.task.update(sum_over_time=True, eval_batch_size=1, eval_seq_len=100)
    c.optimizer.update(name="sgd", lr=1.0, schedule="epoch_decay", lr_decay=0.5,
                       decay_after_epochs=4, warmup_steps=0, grad_clip=5.0, momentum=0.0)
    # Whole-split evaluation and a checkpoint at every epoch end come with train.epochs.
    c.train.update(epochs=13, batch_size=20, log_every=100, eval_every=10**9,
                   checkpoint_every=500, keep_checkpoints=2)
    if arg == "zaremba_medium":
        c.data.seq_len = 35
        c.model.update(hidden_dim=650, dropout_rate=0.5, init_scale=0.05)
        c.optimizer.update(lr_decay=0.8, decay_after_epochs=6)
        c.train.epochs = 39
    elif arg == "zaremba_large":
        c.data.seq_len = 35
        c.model.update(hidden_dim=1500, dropout_rate=0.65, init_scale=0.04)
        c.optimizer.update(lr_decay=1 / 1.15, decay_after_epochs=14, grad_clip=10.0)
        c.train.epochs = 55
    elif arg in ("gru", "rnn"):
        # lr 1.0 diverges for both in the first 200 steps (loss above a unigram model's); these
        # are the rates that learned in a 200-step probe (experiments/ptb_baselines/README.md).
        c.model.cell = arg
        c.optimizer.lr = {"gru": 0.3, "rnn": 0.1}[arg]
    elif arg == "tiny":
        c.data.update(train_split="valid", eval_split="test", test_split="test", seq_len=20)
        c.model.update(hidden_dim=16)
        c.task.update(eval_batch_size=16, eval_seq_len=100)
        c.optimizer.update(decay_after_epochs=1)
        c.train.update(epochs=2, batch_size=64, log_every=10, checkpoint_every=40,
                       progress_bar=False)
    return c
