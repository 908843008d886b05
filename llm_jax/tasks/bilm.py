"""Bidirectional language modelling (ELMo's biLM objective) over windows of words.

The input side is characters, so it keeps every word of the text, rare or not; the output side
is a word softmax over the training vocabulary (WordTokenizer, `data.min_count`), where rare
words are `<unk>`. Word *types* are numbered with the vocabulary first (ids < V) and every other
word seen after it, so a target is `type if type < V else <unk>` and the input characters come
from a per-type table.

A batch is a window of T words with one context word on each side:
  chars int32[B, T, max_chars], fwd_targets int32[B, T] (word t+1), bwd_targets (word t-1).
The loss minimised is forward NLL + backward NLL (the paper's joint log-likelihood); the metric
"loss" is their mean, so the trainer's eval/perplexity is the mean perplexity exp((f + b) / 2).
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from llm_jax import ops
from llm_jax.data import LMBatches, WordTokenizer, eval_batches, load_tokenizer
from llm_jax.data.chars import words_char_ids
from llm_jax.data.split_reader import SplitReader
from llm_jax.data.tokenizers import split_words
from llm_jax.tasks.protocols import NUM_TOKENS

SOFTMAX_KINDS = ("full", "sampled")


class WordTypes:
    """Word -> type id (vocabulary first), growing for words never seen before; `chars` holds
    each type's character ids. `encode(text)` is what `python -m llm_jax eval --split` calls."""

    def __init__(self, vocab: WordTokenizer, max_chars: int):
        self.vocab, self.max_chars = vocab, max_chars
        self.words = list(vocab.words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.chars = words_char_ids(self.words, max_chars)

    def encode(self, text: str) -> np.ndarray:
        words = split_words(text)
        new = [w for w in dict.fromkeys(words) if w not in self.index]
        if new:
            self.index.update({w: len(self.words) + i for i, w in enumerate(new)})
            self.words.extend(new)
            self.chars = np.concatenate([self.chars, words_char_ids(new, self.max_chars)])
        return np.fromiter((self.index[w] for w in words), np.int32, len(words))

    def to_batch(self, window_BT2) -> dict:
        """A window of T + 2 types -> the biLM batch of its T middle words."""
        V, unk = self.vocab.vocab_size, self.vocab.unk_id
        targets = np.where(window_BT2 < V, window_BT2, unk).astype(np.int32)
        return {"chars": self.chars[window_BT2[:, 1:-1]], "fwd_targets": targets[:, 2:],
                "bwd_targets": targets[:, :-2]}


def _window(batch):
    return np.concatenate([batch["inputs"][:, :1], batch["targets"]], axis=1)


class BiLMBatches:
    """LMBatches of T + 1 steps (so T + 2 words) mapped to biLM batches; resumable like it."""

    def __init__(self, types: WordTypes, tokens, seq_len, batch_size, seed):
        self.types = types
        self.windows = LMBatches(tokens, seq_len + 1, batch_size, seed)

    def __iter__(self):
        return self

    def __next__(self):
        return self.types.to_batch(_window(next(self.windows)))

    def get_state(self):
        return self.windows.get_state()

    def set_state(self, state):
        self.windows.set_state(state)


def log_uniform_sample(key, num_sampled, vocab_size):
    """Ids drawn from the Zipfian P(k) = log((k+2)/(k+1)) / log(V+1) (TF's log_uniform sampler;
    it suits a vocabulary sorted by frequency, as WordTokenizer's is), and their probabilities."""
    u = jax.random.uniform(key, (num_sampled,))
    ids = jnp.clip(jnp.floor(jnp.exp(u * jnp.log(vocab_size + 1.0))) - 1, 0, vocab_size - 1)
    return ids.astype(jnp.int32)


def _log_q(ids, vocab_size):
    ids = ids.astype(jnp.float32)
    return jnp.log(jnp.log((ids + 2.0) / (ids + 1.0)) / jnp.log(vocab_size + 1.0))


def sampled_softmax_nll(h_NP, targets_N, kernel_PV, bias_V, key, num_sampled):
    """Sampled-softmax NLL per row (Jean et al. 2015): the true word against `num_sampled`
    shared log-uniform negatives, logits corrected by -log(expected count); a negative equal
    to the row's target is removed. An estimate for training only; evaluation is full softmax."""
    V = kernel_PV.shape[1]
    sampled_K = log_uniform_sample(key, num_sampled, V)
    log_k = jnp.log(float(num_sampled))
    true_logit = (jnp.sum(h_NP * kernel_PV.T[targets_N], -1) + bias_V[targets_N]
                  - (log_k + _log_q(targets_N, V)))
    neg = h_NP @ kernel_PV[:, sampled_K] + bias_V[sampled_K] - (log_k + _log_q(sampled_K, V))
    neg = jnp.where(sampled_K[None, :] == targets_N[:, None], -jnp.inf, neg)
    logits = jnp.concatenate([true_logit[:, None], neg], axis=1).astype(jnp.float32)
    return jax.nn.logsumexp(logits, axis=1) - logits[:, 0]


class BiLM:
    reports_token_nll = True  # "loss" is the mean of the forward and backward token NLLs

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="bilm",
            softmax="full",     # "full" | "sampled" (training only; eval is always full)
            num_sampled=8192,   # negatives per step for the sampled softmax
        ))

    def __init__(self, config, workdir: str):
        self.cfg, d = config.task, config.data
        if self.cfg.softmax not in SOFTMAX_KINDS:
            raise ValueError(f"config.task.softmax={self.cfg.softmax!r}: expected one of {SOFTMAX_KINDS}")
        if d.tokenizer != "word":
            raise ValueError(f"config.data.tokenizer={d.tokenizer!r}: the biLM task needs 'word'")
        # Splits are recorded in WORKDIR/data_files.json and read from any path in
        # config.data.encoding, but tokenised in memory: word *types* are numbered in the order
        # the splits are encoded (WordTypes), so their ids are not a function of one file and
        # the tokenizer, which is what the token cache is keyed by.
        self.splits = SplitReader(d, workdir)
        self.splits.record(d.train_split, d.eval_split)
        train_text = self.splits.text(d.train_split)
        eval_text = self.splits.text(d.eval_split)
        tok_dir = os.path.join(workdir, "tokenizer")
        if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            vocab = load_tokenizer(tok_dir)
        else:
            vocab = WordTokenizer.fit(train_text, min_count=d.min_count)
            vocab.save(tok_dir)
        self.tokenizer = WordTypes(vocab, config.model.max_chars)
        self.data_cfg = d
        self.train_tokens = self.tokenizer.encode(train_text)
        self.eval_tokens = self.tokenizer.encode(eval_text)
        self.seq_len = d.seq_len

    @staticmethod
    def saved_tokenizer(config, workdir: str) -> WordTypes:
        return WordTypes(load_tokenizer(os.path.join(workdir, "tokenizer")), config.model.max_chars)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab.vocab_size

    @property
    def words(self) -> list[str]:
        return self.tokenizer.vocab.words

    def train_batches(self, batch_size: int, seed: int) -> BiLMBatches:
        return BiLMBatches(self.tokenizer, self.train_tokens, self.seq_len, batch_size, seed)

    def split_tokens(self, split: str):
        return self.tokenizer.encode(self.splits.text(split))

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None):
        tokens = self.eval_tokens if tokens is None else tokens
        windows = eval_batches(tokens, self.seq_len + 1, batch_size, max_batches)
        return (self.tokenizer.to_batch(_window(b)) for b in windows)

    def loss(self, model, batch, dropout_key=None):
        """(forward NLL + backward NLL, metrics); pure and jit-able. Full softmax unless
        config.task.softmax == "sampled" and this is a training step (dropout_key given)."""
        sample_key = None
        if dropout_key is not None:
            dropout_key, sample_key = jax.random.split(dropout_key)
        h_fwd, h_bwd = model.top(batch["chars"], dropout_key=dropout_key)
        nlls = []
        for h, targets in ((h_fwd, batch["fwd_targets"]), (h_bwd, batch["bwd_targets"])):
            if self.cfg.softmax == "sampled" and sample_key is not None:
                sample_key, k = jax.random.split(sample_key)
                P = h.shape[-1]
                nlls.append(jnp.mean(sampled_softmax_nll(
                    h.reshape(-1, P).astype(jnp.float32), targets.reshape(-1),
                    model.softmax_kernel[...].astype(jnp.float32),
                    model.softmax_bias[...].astype(jnp.float32), k, self.cfg.num_sampled)))
            else:
                nlls.append(ops.softmax_cross_entropy(model.logits(h), targets)[1])
        fwd, bwd = nlls
        n = jnp.float32(batch["fwd_targets"].size)  # every window is full: no padding
        return fwd + bwd, {"loss": ((fwd + bwd) / 2 * n, n), "forward_loss": (fwd * n, n),
                           "backward_loss": (bwd * n, n), NUM_TOKENS: n}
