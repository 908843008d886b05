"""Counted n-gram language modelling: the config section, the word streams, the fitted model.

Unlike the gradient tasks this one has no batches or loss: training/ngram_loop.py counts the
training stream once and scores whole splits. Words come from the word tokenizer (every
newline is a predicted end of sentence, `<unk>` an ordinary word), fitted on the training split
and saved with the run so that a reloaded run scores the same ids.

Out-of-vocabulary words (test words the training split never had) are scored as `<unk>`, and
`tokens_and_oov` also says which they are, so that perplexity can be reported both ways (see
training/ngram_loop.py). A literal `<unk>` in the text (PTB's preprocessing wrote them) is the
same word as the model's `<unk>`, seen in training like any other, so it is not an OOV.
"""

import os

import ml_collections
import numpy as np

from llm_jax.data import load_tokenizer, make_tokenizer
from llm_jax.data.tokenizers import split_words
from llm_jax.models.ngram import SMOOTHINGS, NGramLM, check_options
from llm_jax.tasks.causal_lm import read_split, tokenizer_options


class NGramLMTask:
    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="ngram_lm",
            order=5,
            smoothing="modified_kn",  # mle | add_k | kn | modified_kn
            k=1.0,                    # add_k: pseudo-count added to every word
            cutoffs=(),               # per order min count to keep an n-gram; () = keep all
            write_arpa=False,         # also write WORKDIR/model.arpa (kn and modified_kn)
            num_samples=5,            # sentences sampled into WORKDIR/samples.txt
        ))

    def __init__(self, config, workdir: str):
        self.cfg, self.data_cfg = config.task, config.data
        t = self.cfg
        if t.smoothing not in SMOOTHINGS:
            raise ValueError(f"config.task.smoothing={t.smoothing!r}: expected one of {SMOOTHINGS}")
        try:
            check_options(t.order, t.smoothing, t.k, t.cutoffs)
        except ValueError as e:
            raise ValueError(f"config.task.{e}") from None
        if self.data_cfg.tokenizer != "word":
            raise ValueError(f"config.data.tokenizer={self.data_cfg.tokenizer!r}: n-gram models "
                             "need 'word' (newlines become predicted end-of-sentence tokens)")
        tok_dir = os.path.join(workdir, "tokenizer")
        if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            self.tokenizer = load_tokenizer(tok_dir)
        else:
            text = read_split(self.data_cfg, self.data_cfg.train_split)
            self.tokenizer = make_tokenizer("word", text, **tokenizer_options(self.data_cfg))
            self.tokenizer.save(tok_dir)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def tokens(self, split: str):
        """The split's word ids; its text must end each sentence with a newline."""
        return self._encode(split, read_split(self.data_cfg, split))

    def tokens_and_oov(self, split: str):
        """(word ids, bool mask of the ids that stand for a word outside the vocabulary)."""
        text = read_split(self.data_cfg, split)
        ids = self._encode(split, text)
        tok = self.tokenizer
        oov = ids == tok.unk_id
        if oov.any():
            # encode() maps a literal "<unk>" and an unknown word to the same id, so tell them
            # apart by the text, split as WordTokenizer.encode splits it.
            words = split_words(text)
            at = np.flatnonzero(oov)
            oov[at] = [words[i] != tok.words[tok.unk_id] for i in at]
        return ids, oov

    def _encode(self, split, text):
        ids = self.tokenizer.encode(text)
        if len(ids) == 0 or ids[-1] != self.tokenizer.eos_id:
            raise ValueError(f"split {split!r} of config.data.corpus={self.data_cfg.corpus!r}: "
                             "expected text whose every sentence ends with a newline")
        return ids

    def fit(self, train_tokens) -> NGramLM:
        t = self.cfg
        return NGramLM.fit(train_tokens,
                           vocab_size=self.vocab_size, eos_id=self.tokenizer.eos_id,
                           order=t.order, smoothing=t.smoothing, k=t.k,
                           cutoffs=tuple(t.cutoffs) or None)
