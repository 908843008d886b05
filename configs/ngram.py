"""Word n-gram LMs on Penn Treebank (Mikolov's 10k-word version), counted in seconds.

The variant names the smoothing and the order, `SMOOTHING + ORDER` with an optional suffix:

  modified_kn5       interpolated modified Kneser-Ney 5-gram, no count cutoffs: SRILM's
                     `ngram-count -order 5 -kndiscount -interpolate -gt3min 1 -gt4min 1
                     -gt5min 1` (Mikolov 2012's KN5, test perplexity 141.2)
  modified_kn5_srilm the same with SRILM's default cutoffs: 3+-grams seen once are dropped
  kn3, add_k2, mle1  interpolated Kneser-Ney (one discount per order), add-k (k=config.task.k,
                     default 1; e.g. --config.task.k=0.01), maximum likelihood

Perplexity counts every sentence end and not the sentence start (SRILM's ppl convention), with
`<unk>` an ordinary word. On a corpus whose test words are not all in the training vocabulary,
`test/perplexity` scores them as `<unk>`, `test/perplexity_no_oov` leaves them out as SRILM's
`ngram -ppl` does, and `test/oov` counts them (0 on PTB, whose text has its own `<unk>`).
"""

import re

from llm_jax.training.config_schema import default_config

SMOOTHINGS = ("modified_kn", "kn", "add_k", "mle")
SRILM_CUTOFFS = (1, 1, 2, 2, 2, 2, 2, 2, 2)  # ngram-count's default -gtNmin


def get_config(arg=None):
    arg = arg or "modified_kn5"
    m = re.fullmatch(r"(modified_kn|kn|add_k|mle)(\d+)(_srilm)?", arg)
    if not m or int(m.group(2)) < 1 or (m.group(3) and m.group(1) not in ("kn", "modified_kn")):
        raise ValueError(f"configs/ngram.py:{arg}: unknown variant; expected SMOOTHING+ORDER "
                         f"(SMOOTHING one of {SMOOTHINGS}, ORDER >= 1), e.g. modified_kn5, "
                         "optionally with _srilm for SRILM's default cutoffs (kn, modified_kn)")
    smoothing, order = m.group(1), int(m.group(2))
    c = default_config("ngram", "ngram_lm")
    c.data.update(corpus="ptb", tokenizer="word", min_count=1, train_split="train",
                  eval_split="valid", test_split="test")
    c.task.update(order=order, smoothing=smoothing)
    if m.group(3):
        c.task.cutoffs = SRILM_CUTOFFS[:order]
    return c
