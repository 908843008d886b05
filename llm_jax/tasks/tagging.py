"""Token tagging: CoNLL-2003 NER (Tjong Kim Sang and De Meulder, 2003) on a `finetune` model
(models/finetune.py) whose head is "token", as BERT does it (Devlin et al., 2019, section 5.3).

Data: CoNLL-2003 from $LLM_JAX_DATA_DIR/conll2003/{train,valid,test}.txt (data.train_split,
eval_split, test_split), or a user's files in the same format (task.train_file, eval_file,
test_file), read by data/tagging_data.py (tags in IOB2) and recorded in WORKDIR/data_files.json
as "conll2003.<split>". A tag that is not O, B-TYPE or I-TYPE stops the read with the reader's
"FILE:LINE: field 'NER': ..." error; a well-formed tag the training split lacks is "UNK" for
the loss (JointBERT's rule, data/tagging_data.py) and scored as the file's own tag.

Tag vocabulary: data/tagging_data.tag_names of the training split ("O", "UNK", then its tags),
saved in WORKDIR/labels.json, so a workdir is evaluated without its training file;
model.num_labels must equal its size (10 for CoNLL-2003).

Inputs: each sentence's words encoded into sub-words by the pre-trained run's tokenizer
(tasks/finetune_inputs.py) as data/word_pieces.py describes ([CLS] pieces [SEP], each word
tokenised on its own; byte-level BPE words after the first get their leading space), padded
to data.seq_len. The label sits on each word's first sub-word; the others, the specials and
the padding have label weight 0 and the loss ignores them. A sentence longer than seq_len
pieces is cut: training learns from the words that fit; evaluation tags the words that fit
and gives every cut word "O" (counted: "ner_cut_words").

Loss: the mean cross-entropy over the batch's labelled sub-words (Hugging Face's
BertForTokenClassification); with model.crf=True a linear-chain CRF's negative log-likelihood
of each sentence's word tags, a mean over sentences (ops/crf.py; Lample et al. 2016's BiLSTM-CRF
layer, JointBERT's --use_crf). Metrics: "loss" and "token_accuracy" (0-1, over labelled
sub-words, of the per-token argmax) as (sum, weight). Every eval also tags the whole eval split
(first sub-words' argmax, or the CRF's Viterbi path over them; "UNK" read as "O") and scores
it with data/tagging_metrics' entity_scores (seqeval, 0-100): "ner_precision", "ner_recall",
"ner_f1" (task.strict: seqeval's strict IOB2 mode instead of conlleval's), so
train.best_metric="eval/ner_f1" keeps the best dev checkpoint.

tasks/intent_slots.py builds joint intent detection and slot filling on the same machinery
(WordTaggingTask), which also answers the `predict` command (built with read_eval=False: no
data is read): {"words": [...]}, {"text": "..."} or a plain text line, split on whitespace,
answered with {"words", "tags"} ({"words", "intent", "intent_probability", "slots"}).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from llm_jax.data import data_record
from llm_jax.data.example_batches import padded_batches
from llm_jax.data.tagging_data import UNK, read_conll2003, tag_ids, tag_names
from llm_jax.data.text_files import TextSlice
from llm_jax.data.tokenizers import write_atomic
from llm_jax.data.word_pieces import WordPieces, encode_words
from llm_jax.evaluation.tagging_metrics import entity_scores
from llm_jax.ops.crf import crf_decode, crf_log_likelihood
from llm_jax.ops.losses import cross_entropy_sums
from llm_jax.tasks.finetune_inputs import check_seq_len, finetune_tokenizer, json_type, text_field
from llm_jax.tasks.finetune_task import FineTuneTask
from llm_jax.tasks.masked_lm import TOKENIZER_KINDS
from llm_jax.tasks.protocols import NUM_TOKENS, mean_metric

LABELS_FILE = "labels.json"  # WORKDIR/labels.json: {"tags": [...], "intents": [...]}


@dataclasses.dataclass
class TaggedExamples:
    """One split, encoded: what `split_tokens` returns and eval_batches / predict read."""
    name: str                  # the split as config.data names it
    path: str                  # the file (or folder) it came from
    pieces: WordPieces
    tags: list[list[str]]      # the gold tags as the file has them (scored as they are)
    labels: np.ndarray         # int32 [N, T]: tag id at each first sub-word, -1 elsewhere
    intents: list[str] | None = None       # intent_slots: the gold intents
    intent_labels: np.ndarray | None = None  # int32 [N]

    def __len__(self) -> int:
        return len(self.pieces)

    def rows(self, index, real=None, *, labelled=True) -> dict:
        """The batch of rows `index` (weight 0 where `real` is False)."""
        labels = self.labels[index]
        batch = {"input_ids": self.pieces.input_ids[index],
                 "segment_ids": np.zeros(labels.shape, np.int32),
                 "mask": self.pieces.mask(index),
                 "weights": (np.ones(len(index), np.float32) if real is None
                             else np.asarray(real, np.float32)),
                 "labels": np.maximum(labels, 0), "label_weights": (labels >= 0).astype(np.float32),
                 "word_starts": self.pieces.word_starts(index)}
        if self.intent_labels is not None:
            batch["intent_labels"] = self.intent_labels[index]
        return batch


def tag_loss_sums(model, logits_BTC, labels_BT, w_BT, w_B):
    """(sum, weight) of the tagging loss: the cross-entropy of the labelled sub-words (a mean
    per sub-word), or with model.crf the CRF's negative log-likelihood of each sentence's
    tags (a mean per sentence: pytorch-crf's reduction="mean", as JointBERT's CRF uses it)."""
    if model.crf is None:
        _, nll_sum, n = cross_entropy_sums(logits_BTC, labels_BT, weights=w_BT)
        return nll_sum, n
    ll_B = crf_log_likelihood(logits_BTC, labels_BT, w_BT > 0, *model.crf.arrays())
    return -jnp.sum(w_B * ll_B), jnp.sum(w_B)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _predict_batch(graphdef, state, input_ids, segment_ids, mask, word_starts):
    model = nnx.merge(graphdef, state)
    out = model(input_ids, segment_ids, mask)
    ids = {k: jnp.argmax(v, -1) for k, v in out.items() if k.endswith("logits")}
    if model.crf is not None:  # the Viterbi path over the words' first sub-words
        key = "slot_logits" if "slot_logits" in out else "logits"
        ids[key] = crf_decode(out[key], word_starts, *model.crf.arrays())
    if "intent_logits" in out:
        ids["intent_probability"] = jnp.max(jax.nn.softmax(out["intent_logits"], -1), -1)
    return ids


class WordTaggingTask(FineTuneTask):
    """What token_tagging and intent_slots share: the tokenizer, the label vocabularies, the
    words encoded with their first sub-words, batches and prediction. A subclass names its
    model head and data (`_read`, `_words`, `_vocabularies`, `_intents`), its loss and scores."""

    def __init__(self, config, workdir: str, *, read_eval: bool = True):
        """`read_eval`: read and encode the eval split now, so that a bad file fails before
        training starts (False: the `predict` command, which needs no data)."""
        c, d, m = config.task, config.data, config.model
        self.cfg, self.data_cfg, self.workdir = c, d, workdir
        self.check_model(config)
        if d.tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"config.data.tokenizer={d.tokenizer!r}: the {c.name} task reads "
                             f"sub-words of a BERT-family tokenizer, one of {sorted(TOKENIZER_KINDS)}")
        self.max_len = check_seq_len(d, m.backbone)
        self.batch_size = int(config.train.batch_size)
        self._raw: dict[str, object] = {}
        self._splits: dict[str, TaggedExamples] = {}
        self.tokenizer = finetune_tokenizer(
            workdir, d, config.get("init_from", ""),
            lambda: [" ".join(w) for w in self._words(self._read_split(d.train_split))])
        self.labels = self._label_names(m)
        self.tag_names = self.labels["tags"]
        if read_eval:
            self.split_tokens(d.eval_split)

    # -- data --------------------------------------------------------------------------

    def _file(self, split: str, fields=("train_file", "eval_file", "test_file")) -> str | None:
        d = self.data_cfg
        for role, field in zip((d.train_split, d.eval_split, d.test_split), fields):
            if split == role and self.cfg[field]:
                return self.cfg[field]
        return None

    def _read(self, split: str):
        """(the split as its reader gives it, {record name: file read})."""
        raise NotImplementedError

    def _words(self, raw) -> list[list[str]]:
        raise NotImplementedError

    def _vocabularies(self, train) -> dict[str, list[str]]:
        """{"tags": names[, "intents": names]} of the training split."""
        return {"tags": tag_names(train)}

    def _intents(self, raw, index) -> tuple[list[str] | None, np.ndarray | None]:
        return None, None

    def _read_split(self, split: str):
        if split not in self._raw:
            raw, files = self._read(split)
            if self.workdir is not None:  # traced in WORKDIR/data_files.json, checked on re-reads
                for name, path in files.items():
                    data_record.record_split(self.workdir, name, TextSlice(pathlib.Path(path),
                                                                           self.data_cfg.encoding))
            self._raw[split] = raw
        return self._raw[split]

    def _label_names(self, model_cfg) -> dict[str, list[str]]:
        """The saved vocabularies, or the training split's (saved once they fit the model)."""
        path = os.path.join(self.workdir, LABELS_FILE)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                names = json.load(f)
            where = path
        else:
            names = self._vocabularies(self._read_split(self.data_cfg.train_split))
            where = "the training split's"
        sizes = {"tags": ("num_labels", "tag"), "intents": ("num_intents", "intent")}
        for key, values in names.items():
            field, what = sizes[key]
            if model_cfg[field] != len(values):
                shown = ", ".join(values[:6]) + (", ..." if len(values) > 6 else "")
                raise ValueError(f"config.model.{field}={model_cfg[field]}, but {where} {what} "
                                 f"vocabulary has {len(values)} ({shown}): set "
                                 f"config.model.{field}={len(values)}")
        if not os.path.isfile(path):
            write_atomic(pathlib.Path(path), (json.dumps(names, indent=1) + "\n").encode())
        return names

    def split_tokens(self, split: str) -> TaggedExamples:
        """The split, encoded (train: task.train_examples' subset; eval: eval_examples')."""
        if split not in self._splits:
            raw = self._read_split(split)
            words = self._words(raw)
            index = self.subset(split, len(words))
            pieces = encode_words(self.tokenizer, [words[i] for i in index], self.max_len)
            ids = tag_ids(raw, self.tag_names)
            labels = pieces.token_labels([ids[i] for i in index])
            intents, intent_labels = self._intents(raw, index)
            self._splits[split] = TaggedExamples(split, str(raw.path), pieces,
                                                 [raw.tags[i] for i in index], labels, intents,
                                                 intent_labels)
        return self._splits[split]

    # -- prediction --------------------------------------------------------------------

    def predicted_ids(self, model, examples: TaggedExamples) -> dict[str, np.ndarray]:
        """The argmax of each of the model's logits for every row, in order: "logits" or
        "slot_logits" [N, T] (a tag id per sub-word), "intent_logits" [N]; with intents also
        "intent_probability" [N], the predicted intent's softmax probability."""
        graphdef, state = nnx.split(model)
        out: dict[str, list] = {}
        for batch in padded_batches(examples, self.batch_size, labelled=False):
            real = batch["weights"] > 0
            ids = _predict_batch(graphdef, state, batch["input_ids"], batch["segment_ids"],
                                 batch["mask"], batch["word_starts"])
            for k, v in ids.items():
                out.setdefault(k, []).append(np.asarray(v)[real])
        return {k: np.concatenate(v) for k, v in out.items()}

    def word_tags(self, examples: TaggedExamples, tag_ids_NT: np.ndarray) -> list[list[str]]:
        """Each word's tag: the id at its first sub-word, "O" for a cut word and for "UNK" (a
        class no training word has)."""
        names = self.tag_names
        o = names.index("O")
        tags = []
        for n in range(len(examples)):
            words = examples.pieces.word_values(n, tag_ids_NT[n], fill=o)
            tags.append(["O" if names[i] == UNK else names[i] for i in words])
        return tags

    def predict(self, model, examples: TaggedExamples) -> dict:
        """{"tags": a tag per word of each sentence[, "intents": one per utterance, and
        "intent_probabilities": each one's softmax probability]}."""
        ids = self.predicted_ids(model, examples)
        tag_key = "slot_logits" if "slot_logits" in ids else "logits"
        out = {"tags": self.word_tags(examples, ids[tag_key])}
        if "intent_logits" in ids:
            out["intents"] = [self.labels["intents"][i] for i in ids["intent_logits"].tolist()]
            out["intent_probabilities"] = ids["intent_probability"].tolist()
        return out

    def parse_prediction_input(self, record) -> list[str]:
        """The words of one `predict` input line: {"words": [...]}, {"text": "..."} or the
        line's text, split on whitespace."""
        if isinstance(record, str):
            return record.split()
        if "words" in record:
            words = record["words"]
            if not isinstance(words, list):
                raise ValueError(f"field 'words': expected a list of strings, got {json_type(words)}")
            for i, w in enumerate(words):
                if not isinstance(w, str) or not w.strip():
                    got = json_type(w) if not isinstance(w, str) else "an empty string"
                    raise ValueError(f"field 'words': item {i} is {got}, expected a word")
            return list(words)
        if "text" in record:
            return text_field(record, "text").split()
        raise ValueError("field 'words': missing (expected a list of words, or a field 'text' "
                         "to split on whitespace)")

    def predict_json(self, model, inputs: list[list[str]]) -> list[dict]:
        """{"words", "tags"} of each sentence (intent_slots: {"words", "intent",
        "intent_probability", "slots"}); a word past data.seq_len sub-words is tagged "O"."""
        pieces = encode_words(self.tokenizer, inputs, self.max_len)
        examples = TaggedExamples("predict", "the input", pieces, [[] for _ in inputs],
                                  np.full(pieces.input_ids.shape, -1, np.int32))
        p = self.predict(model, examples)
        if "intents" not in p:
            return [{"words": w, "tags": t} for w, t in zip(inputs, p["tags"])]
        return [{"words": w, "intent": i, "intent_probability": float(q), "slots": t}
                for w, i, q, t in zip(inputs, p["intents"], p["intent_probabilities"], p["tags"])]

    def scores(self, examples: TaggedExamples, predictions: dict) -> dict:
        raise NotImplementedError

    def decode_metrics(self, model, tokens=None, *, final: bool) -> dict:
        """The task's official scores of the whole split, at every eval (`final` or not), so
        that the values the best checkpoint is chosen by are comparable."""
        examples = self.valid if tokens is None else tokens
        return self.scores(examples, self.predict(model, examples))


class TokenTagging(WordTaggingTask):
    head = "token"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="token_tagging",
            dataset="conll2003",  # the data directory's CoNLL-2003 (its only tagging corpus)
            train_file="",      # "": $LLM_JAX_DATA_DIR/conll2003/train.txt; or a user's file
            eval_file="",       # "": .../valid.txt (data.eval_split)
            test_file="",       # "": .../test.txt (data.test_split)
            strict=False,       # entity scores in seqeval's strict IOB2 mode, not conlleval's
            train_examples=0,   # > 0: a fixed random subset of this many training sentences
            eval_examples=0,    # > 0: the eval split's first this many sentences
        ))

    def __init__(self, config, workdir: str, **options):
        if config.task.dataset != "conll2003":
            raise ValueError(f"config.task.dataset={config.task.dataset!r}: expected 'conll2003' "
                             "(other CoNLL-format files: task.train_file / eval_file / test_file)")
        super().__init__(config, workdir, **options)

    def _read(self, split: str):
        raw = read_conll2003(split, path=self._file(split), encoding=self.data_cfg.encoding)
        return raw, {f"conll2003.{split}": raw.path}

    def _words(self, raw) -> list[list[str]]:
        return raw.tokens

    def loss(self, model, batch, dropout_key=None):
        """(mean cross-entropy over the batch's labelled sub-words, metrics)."""
        logits_BTC = model(batch["input_ids"], batch["segment_ids"], batch["mask"],
                           dropout_key=dropout_key)["logits"]
        w_B = batch["weights"]
        w_BT = batch["label_weights"] * w_B[:, None]
        nll_sum, n = tag_loss_sums(model, logits_BTC, batch["labels"], w_BT, w_B)
        correct_BT = (jnp.argmax(logits_BTC, -1) == batch["labels"]).astype(jnp.float32)
        n_tokens = jnp.sum(batch["mask"] & (w_B[:, None] > 0)).astype(jnp.float32)
        return nll_sum / jnp.maximum(n, jnp.finfo(jnp.float32).tiny), {
            "loss": (nll_sum, n), "token_accuracy": mean_metric(correct_BT, w_BT),
            NUM_TOKENS: n_tokens}

    def scores(self, examples: TaggedExamples, predictions: dict) -> dict:
        """Entity precision / recall / F1 (0-100) and the number of words tagged "O" for
        not fitting in data.seq_len sub-words."""
        s = entity_scores(examples.tags, predictions["tags"], strict=bool(self.cfg.strict))
        return {"ner_precision": s["precision"], "ner_recall": s["recall"], "ner_f1": s["f1"],
                "ner_cut_words": float(examples.pieces.cut_words)}
