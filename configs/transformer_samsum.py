"""The encoder-decoder Transformer as a summariser: SAMSum dialogues -> summaries.

The model and task of configs/transformer_multi30k.py (its `small` variant), scored with
ROUGE-1/2/L/Lsum (rouge-score) instead of BLEU. Dialogues are long (turns joined by
newlines), so positions go to 512 and each side is padded to its own length bucket (summaries
are a fifth of their dialogues' length); beam 4 with a minimum and maximum summary length, as
summarisation papers decode.

  small: 3 + 3 pre-LN layers, d 256, 8 heads, FFN 1024, a joint 8k BPE vocabulary, 10 epochs.
  tiny:  a seconds-long smoke run for tests.
"""

import pathlib

from llm_jax.training.config_schema import config_from_file

VARIANTS = ("small", "tiny")


def _translation_config(variant):
    return config_from_file(pathlib.Path(__file__).with_name("transformer_multi30k.py"), variant)


def get_config(arg=None):
    arg = arg or "small"
    if arg not in VARIANTS:
        raise ValueError(f"configs/transformer_samsum.py:{arg}: unknown variant; expected one of "
                         f"{VARIANTS}")
    c = _translation_config(arg)
    c.data.corpus = "samsum"
    c.task.update(metric="rouge", beam_size=4, alpha=0.6, min_len=10, max_out_len=100)
    c.train.best_metric = "eval/rouge1"
    if arg == "small":
        # pre-LN: the post-LN encoder of the Multi30k recipe collapsed here (its output the
        # same vector at every position of every dialogue by step 3,000; README "Training")
        c.model.update(max_len=512, pre_ln=True)
        c.task.update(length_buckets=(32, 64, 128, 192, 256, 384))
        # 10 epochs of 964 batches of 4,096 tokens: about 0.65 s a batch with its evaluations
        # on the idle 2-core CPU (steps 500-1,400 of a run), so about 1 h 45 min in all
        c.train.update(epochs=10, batch_size=32)
    else:
        c.task.update(min_len=3, max_out_len=20, length_buckets=(16, 32))
    return c
