"""Masked-LM pre-training of BERT, RoBERTa and ALBERT (models/bert.py), with NSP or SOP.

The recipes differ in a few switches of `config.task`:
  BERT:    packing="pairs", sentence_task="nsp", masking="static" (dupe_factor copies of the
           corpus, each with its own pairs and masks, as create_pretraining_data.py writes them)
  RoBERTa: packing="full_sentences", sentence_task="", masking="dynamic" (a new mask each time
           an instance is seen)
  ALBERT:  packing="pairs", sentence_task="sop"
Data: data/mlm_data.py (documents, sentences, instances) and data/mlm_batches.py (masking and
the batch format). The loss is the masked-LM cross-entropy, a mean over the batch's masked
tokens, plus the sentence head's cross-entropy, a mean over its rows, as in BERT.

Metrics: mlm_loss and mlm_accuracy over masked tokens, sentence_loss and sentence_accuracy
over rows, each a (sum, weight) pair and so exact over the eval split; the trainer logs
perplexity = exp(mlm_loss) (`token_nll_metric`). `loss` is the total: with a sentence task it
is a sum of two means, which no single ratio of sums can give over many batches, so the eval
`loss` is the row-weighted mean of the batches' totals (what Google's estimator reports); its
exact parts are mlm_loss and sentence_loss.

The tokenizer (`config.data.tokenizer`) is read from `config.data.vocab_file` (and for
"roberta_bpe" `merges_file`), by default the shared files under the data directory, or
fitted on the training split with `vocab_file="fit"`; either way it is saved in
WORKDIR/tokenizer, from which llm_jax.load rebuilds it without the corpus.
"""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from llm_jax.data import albert_tokenizer as albert
from llm_jax.data import bert_tokenizers as bt
from llm_jax.data import data_record
from llm_jax.data.mlm_batches import MASKINGS, Masker, MLMBatches, eval_batches, word_start_table
from llm_jax.data.mlm_data import (
    TEXT_FORMATS,
    cached_documents,
    full_sentence_instances,
    pair_instances,
    split_documents,
)
from llm_jax.data.paths import data_dir
from llm_jax.data.split_reader import SplitReader
from llm_jax.data.token_cache import tokenizer_fingerprint
from llm_jax.data.tokenizers import load_tokenizer
from llm_jax.ops.losses import cross_entropy_sums
from llm_jax.tasks.causal_lm import FIT, TOKENIZER_DIR, WorkdirTokenizer
from llm_jax.tasks.protocols import NUM_TOKENS, mean_metric

SENTENCE_TASKS = ("nsp", "sop", "")
PACKINGS = ("pairs", "full_sentences")
# kind -> (class, its unknown token, default files under the data directory)
TOKENIZER_KINDS = {
    "wordpiece": (bt.WordPieceTokenizer, bt.BERT_SPECIALS["unk"],
                  ("tokenizers/bert-base-uncased/vocab.txt",)),
    "roberta_bpe": (bt.RobertaBPETokenizer, bt.ROBERTA_SPECIALS["unk"],
                    ("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe")),
    "albert_sp": (albert.AlbertSentencePieceTokenizer, albert.ALBERT_SPECIALS["unk"], ()),
}
EVAL_SEED = 0  # eval instances and masks are the same whatever the training seed
_PAIRS = 4     # second word of the pair-drawing generators' seeds


def _choice(cfg, field, allowed):
    if cfg[field] not in allowed:
        raise ValueError(f"config.task.{field}={cfg[field]!r}: expected one of {allowed}")


def _existing(path: str, field: str, what: str) -> str:
    if not os.path.isfile(path):
        raise ValueError(f"config.data.{field}={path!r}: no such file (the {what})")
    return path


def read_tokenizer(data_cfg, sentences=None):
    """The tokenizer `config.data` names: from its files, or fitted on `sentences()`."""
    kind = data_cfg.tokenizer
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"config.data.tokenizer={kind!r}: the masked_lm task reads one of "
                         f"{sorted(TOKENIZER_KINDS)}")
    cls, _, defaults = TOKENIZER_KINDS[kind]
    if data_cfg.vocab_file == FIT:
        return cls.fit(sentences(), vocab_size=data_cfg.vocab_size)
    vocab = data_cfg.vocab_file or (str(data_dir() / defaults[0]) if defaults else "")
    if not vocab:
        raise ValueError(f"config.data.vocab_file: there are no shared {kind} files; name a "
                         f"model file or set it to {FIT!r}")
    if kind == "wordpiece":
        return cls.from_vocab_file(_existing(vocab, "vocab_file", "WordPiece vocab.txt"))
    if kind == "roberta_bpe":
        merges = data_cfg.merges_file or str(data_dir() / defaults[1])
        return cls.from_files(_existing(vocab, "vocab_file", "BPE vocab.json / encoder.json"),
                              _existing(merges, "merges_file", "BPE merges.txt / vocab.bpe"))
    return cls.from_file(_existing(vocab, "vocab_file", "SentencePiece model"))


class MaskedLM(WorkdirTokenizer):
    reports_token_nll = True
    token_nll_metric = "mlm_loss"  # the trainer's perplexity is exp of this, not of "loss"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="masked_lm",
            sentence_task="nsp",   # "nsp" (BERT) | "sop" (ALBERT) | "": MLM alone (RoBERTa)
            packing="pairs",       # "pairs": [CLS] A [SEP] B [SEP] | "full_sentences" (RoBERTa)
            masking="static",      # "static": a mask per instance | "dynamic": per step
            whole_word=False,      # mask a word's pieces together (whole-word masking)
            mask_prob=0.15,        # share of the non-special tokens that are predicted
            short_seq_prob=0.1,    # pairs: share of instances with a shorter random length
            max_predictions=0,     # P, masked positions a row holds; 0: ceil(mask_prob T) + 2
            dupe_factor=5,         # copies of the corpus per epoch, each own pairs / masks
            text_format="wikitext",  # "wikitext" | "lines" (a sentence a line; blank: new doc)
        ))

    def __init__(self, config, workdir: str):
        c, d = config.task, config.data
        self.cfg, self.data_cfg, self.workdir = c, d, workdir
        for field, allowed in (("sentence_task", SENTENCE_TASKS), ("packing", PACKINGS),
                               ("masking", MASKINGS), ("text_format", TEXT_FORMATS)):
            _choice(c, field, allowed)
        if c.sentence_task and c.packing != "pairs":
            raise ValueError(f"config.task.sentence_task={c.sentence_task!r} needs sentence "
                             "pairs: set config.task.packing='pairs'")
        m = config.model
        if c.sentence_task and not m.get("sentence_head"):
            raise ValueError(f"config.task.sentence_task={c.sentence_task!r}: the model has no "
                             "sentence head; set config.model.sentence_head")
        if c.packing == "pairs" and m.get("type_vocab_size", 2) < 2:
            raise ValueError("config.task.packing='pairs' gives segment ids 0 and 1: set "
                             "config.model.type_vocab_size >= 2")
        last_position = d.seq_len + (m.get("pad_position", 1) + 1
                                     if m.get("position_ids") == "cumsum_mask" else 0)
        if last_position > m.get("max_len", last_position):  # a gather would clamp silently
            raise ValueError(f"config.data.seq_len={d.seq_len} needs positions up to "
                             f"{last_position - 1}: raise config.model.max_len={m.max_len}")
        if not 0.0 < c.mask_prob < 1.0 or not 0.0 <= c.short_seq_prob <= 1.0:
            raise ValueError(f"config.task.mask_prob={c.mask_prob} must be in (0, 1) and "
                             f"short_seq_prob={c.short_seq_prob} in [0, 1]")
        if c.dupe_factor < 1:
            raise ValueError(f"config.task.dupe_factor={c.dupe_factor} must be >= 1")
        self.max_len = int(d.seq_len)
        need = int(np.ceil(c.mask_prob * self.max_len))
        self.max_predictions = int(c.max_predictions or need + 2)
        if self.max_predictions < need:
            raise ValueError(f"config.task.max_predictions={c.max_predictions} is below "
                             f"ceil(mask_prob * seq_len) = {need}")
        self.splits = SplitReader(d, workdir)
        self.splits.record(d.train_split, d.eval_split)
        self.tokenizer = self._fit_or_load_tokenizer()
        self.ids = self.tokenizer.special_ids
        self._docs, self._instances = {}, {}
        self.masker = Masker(
            vocab_size=self.tokenizer.vocab_size, mask_id=self.ids["mask"],
            special_ids=[self.ids[k] for k in ("cls", "sep", "pad")], mask_prob=c.mask_prob,
            max_predictions=self.max_predictions,
            word_starts=word_start_table(self.tokenizer) if c.whole_word else None)
        self.train_docs = self.split_tokens(d.train_split)
        self.eval_docs = self.split_tokens(d.eval_split)

    # -- data --------------------------------------------------------------------------

    def _sentences(self, split: str) -> list[str]:
        unk = TOKENIZER_KINDS[self.data_cfg.tokenizer][1]
        docs = split_documents(self.splits.text(split), self.cfg.text_format, unk)
        return [s for doc in docs for s in doc]

    def _fit_or_load_tokenizer(self):
        tok_dir = os.path.join(self.workdir, TOKENIZER_DIR)
        if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            return load_tokenizer(tok_dir)
        tokenizer = read_tokenizer(self.data_cfg,
                                   lambda: self._sentences(self.data_cfg.train_split))
        tokenizer.save(tok_dir)
        return tokenizer

    def split_tokens(self, split: str):
        """The split's tokenised documents (data/mlm_data.Documents)."""
        if split not in self._docs:
            key, cache = {"split": split}, None
            if self.splits.from_files:
                src = self.splits.source(split)
                key.update(sha256=data_record.digest(src.path)[1], part=src.describe(),
                           encoding=src.encoding, tokenizer=tokenizer_fingerprint(self.tokenizer))
                cache = self.splits.cache_dir
            unk = self.tokenizer.id_to_token(self.ids["unk"])
            self._docs[split] = cached_documents(
                lambda: self.splits.text(split), key, self.tokenizer, unk, self.cfg.text_format,
                cache, f"mlm-{split}")
        return self._docs[split]

    def instances(self, docs, seed: int, copies: int):
        """`copies` draws of the instances of `docs`, one after another (cached)."""
        key = (id(docs), seed, copies)
        if key not in self._instances:
            c = self.cfg
            if c.packing == "full_sentences":
                one = full_sentence_instances(docs, self.max_len, self.ids["sep"])
                sets = [one] * copies
            else:
                sets = [pair_instances(docs, self.max_len,
                                       np.random.default_rng([seed, _PAIRS, k]),
                                       sentence_task=c.sentence_task,
                                       short_seq_prob=c.short_seq_prob) for k in range(copies)]
            out = sets[0]
            for more in sets[1:]:
                out = out.concat(more)
            self._instances[key] = (docs, out)  # docs kept alive, so that its id stays its own
        return self._instances[key][1]

    def train_batches(self, batch_size: int, seed: int) -> MLMBatches:
        inst = self.instances(self.train_docs, seed, self.cfg.dupe_factor)
        return MLMBatches(inst, batch_size=batch_size, max_len=self.max_len, seed=seed,
                          masker=self.masker, masking=self.cfg.masking, ids=self.ids,
                          sentence_task=bool(self.cfg.sentence_task))

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None):
        docs = self.eval_docs if tokens is None else tokens
        return eval_batches(self.instances(docs, EVAL_SEED, 1), batch_size=batch_size,
                            max_len=self.max_len, seed=EVAL_SEED, masker=self.masker,
                            ids=self.ids, sentence_task=bool(self.cfg.sentence_task),
                            max_batches=max_batches)

    # -- loss --------------------------------------------------------------------------

    def loss(self, model, batch, dropout_key=None):
        """(MLM mean + sentence mean, metrics as (sum, weight)); pure and jit-able."""
        k_enc = k_cls = None
        if dropout_key is not None:
            k_enc, k_cls = jax.random.split(dropout_key)
        h_BTD = model.encode(batch["input_ids"], batch["segment_ids"], batch["mask"],
                             dropout_key=k_enc)
        # only the masked positions go through the output layer: P of T, a sixth of the cost
        h_BPD = jnp.take_along_axis(h_BTD, batch["mlm_positions"][..., None], axis=1)
        logits_BPV = model.mlm_logits(h_BPD)
        w_BP = batch["mlm_weights"]
        _, nll_sum, n_masked = cross_entropy_sums(logits_BPV, batch["mlm_ids"], weights=w_BP)
        tiny = jnp.finfo(jnp.float32).tiny
        loss = nll_sum / jnp.maximum(n_masked, tiny)
        correct_BP = (jnp.argmax(logits_BPV, -1) == batch["mlm_ids"]).astype(jnp.float32)
        rows_B = batch["weights"]
        metrics = {"mlm_loss": (nll_sum, n_masked), "mlm_accuracy": mean_metric(correct_BP, w_BP),
                   NUM_TOKENS: jnp.sum(batch["mask"] & (rows_B[:, None] > 0)).astype(jnp.float32)}
        if self.cfg.sentence_task:
            logits_B2 = model.sentence_logits(model.pool(h_BTD), dropout_key=k_cls)
            labels_B = batch["sentence_label"]
            _, s_sum, n_rows = cross_entropy_sums(logits_B2, labels_B, weights=rows_B)
            loss = loss + s_sum / jnp.maximum(n_rows, tiny)
            s_correct_B = (jnp.argmax(logits_B2, -1) == labels_B).astype(jnp.float32)
            metrics.update(sentence_loss=(s_sum, n_rows),
                           sentence_accuracy=mean_metric(s_correct_B, rows_B),
                           loss=(loss * n_rows, n_rows))
        else:
            metrics["loss"] = (nll_sum, n_masked)
        return loss, metrics
