"""GLUE fine-tuning (Wang et al., 2019): SST-2, CoLA, MRPC, STS-B, RTE, WNLI and QNLI with a
`finetune` model (models/finetune.py) whose head is "classification".

Data: `config.task.glue_task`'s TSV files as GLUE's download script writes them, read by
data/glue_data.py from $LLM_JAX_DATA_DIR/glue/<Task>/ (`data.train_split`, `eval_split`,
`test_split`: "train", "valid" = dev, "test"), or from a user's files with the same columns
(`task.train_file`, `eval_file`, `test_file`). Each file is recorded in WORKDIR/data_files.json
as "glue.<split>". Sentences and pairs are encoded by the BERT-family tokenizer as the model
was pre-trained with it ([CLS] A [SEP] B [SEP], segment ids 0 then 1), truncated longest-first
to `data.seq_len` tokens and padded to it, so every batch has the same shape.

The tokenizer is the pre-trained run's (tasks/finetune_inputs.py), saved in WORKDIR/tokenizer.

Other backbones (models/finetune.py; model.backbone.name picks the input layout):
  gpt   GPT-1's layout (Radford et al. 2018, figure 1): start + A + extract, a pair start + A +
        delimiter + B + extract, truncated longest-first so that the extract token always
        stays (the model pools its state), segment ids 0. The tokenizer is the pre-trained
        run's (char, word, sentencepiece or gpt2_bpe, as causal_lm fits them; without
        init_from: data.tokenizer fitted on the training sentences, gpt2_bpe read from its
        files). The three tokens are none of the tokenizer's: they are ids V, V + 1, V + 2
        after the backbone's vocabulary V, whose embeddings the adapter adds (finetune's
        GPT_SPECIALS). A char tokenizer drops the characters it does not have (a pre-trained
        Shakespeare vocabulary lacks most digits), rather than failing.
        task.lm_loss_weight > 0 adds GPT-1's auxiliary LM loss (0.5 in the paper): that weight
        times the mean next-token cross-entropy over the real text tokens (targets that are
        one of the three added tokens, or padding, are not scored: the LM's softmax has no row
        for them), reported as "lm_loss"; "loss" stays the classification loss alone.
  elmo  whitespace words turned into char ids (data/chars.py, as the ELMo biLM reads them;
        GlueExamples keeps one char row per distinct word and the batches gather them, so a
        split costs [N, T] word indices, not [N, T, max_chars]); a pair is A + "<eos>" + B
        (the word tokenizer's end-of-line word, which the biLM saw between the lines of its
        corpus), truncated longest-first to data.seq_len words. The tokenizer (word: the
        pre-trained run's, or fitted) only sizes model.vocab_size: the inputs are characters.

Training batches are data/example_batches.ExampleBatches (a seeded, resumable order; epoch e
a permutation drawn from (seed, e)); eval batches are the split in file order, the last one
filled with rows of weight 0 (padded_batches).

Loss: cross-entropy of the class logits, or for STS-B (num_labels=1) the squared error of the
score, each a mean over the batch's rows. Metrics: "loss" and (classification) "accuracy" as
(sum, weight). Every eval also scores the whole eval split with GLUE's official metric
(evaluation/glue_metrics.py, 0-100), through the trainer's DecodingEvaluator hook, as
"glue_<name>" (glue_matthews_correlation for CoLA, glue_f1 and glue_accuracy for MRPC,
glue_pearson and glue_spearmanr for STS-B, glue_accuracy for the rest: prefixed so that
GLUE's accuracy, 0-100 over the whole split, is never confused with the batch metric
"accuracy", 0-1) and "glue_score", the one number the leaderboard shows for the task (the
combined score where there are two). `train.best_metric="eval/glue_score"` therefore selects
the best checkpoint by the dev metric for any GLUE task. The whole split is scored even at
periodic evaluations (GLUE's dev sets are small: 5.5k examples at most), so that the values
the best checkpoint is chosen by are comparable.

Prediction (the `predict` command, built with read_eval=False: no data is read): one JSON
object a line with the task's PREDICT_FIELDS (Hugging Face's `glue` column names), or plain
text for the single-sentence tasks, answered with {"label", "probabilities": {name: p}}, or
{"score"} for STS-B.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from llm_jax.data import data_record
from llm_jax.data.chars import PAD, words_char_ids
from llm_jax.data.example_batches import padded_batches
from llm_jax.data.glue_data import LABEL_NAMES, glue_task, read_glue
from llm_jax.data.text_files import TextSlice
from llm_jax.data.tokenizers import EOS, CharTokenizer
from llm_jax.evaluation.glue_metrics import glue_metrics
from llm_jax.ops.losses import cross_entropy_sums, weighted_sum
from llm_jax.tasks.finetune_inputs import (
    LM_TOKENIZERS,
    check_seq_len,
    finetune_tokenizer,
    lm_tokenizer,
    text_field,
    truncate_longest_first,
)
from llm_jax.tasks.finetune_task import FineTuneTask
from llm_jax.tasks.masked_lm import TOKENIZER_KINDS
from llm_jax.tasks.protocols import NUM_TOKENS, mean_metric

_ENCODE_CHUNK = 4096  # examples tokenised at once (bounds the tokenizer's offsets arrays)


@dataclasses.dataclass
class GlueExamples:
    """One split, encoded: what `split_tokens` returns and eval_batches / predict read."""
    name: str            # the split as config.data names it
    path: str            # the TSV it came from
    input_ids: np.ndarray    # int32 [N, T], padded (elmo: indices into char_table)
    segment_ids: np.ndarray  # int8 [N, T]
    lengths: np.ndarray      # int32 [N], real tokens per row
    labels: np.ndarray | None  # int32 class ids or float32 scores [N]; None: unlabelled
    # elmo: int32 [words, max_chars], row 0 the padding word; batches' input_ids are
    # char_table[input_ids], [B, T, max_chars]
    char_table: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def require_labels(self) -> None:
        if self.labels is None:
            raise ValueError(f"{self.path} (split {self.name!r}) has no labels (GLUE's test.tsv): "
                             "it can be predicted but not scored")

    def rows(self, index, real=None, *, labelled=True) -> dict:
        """The batch of rows `index` (weight 0 where `real` is False)."""
        if labelled:
            self.require_labels()
        T = self.input_ids.shape[1]
        ids = self.input_ids[index]
        batch = {"input_ids": ids if self.char_table is None else self.char_table[ids],
                 "segment_ids": self.segment_ids[index].astype(np.int32),
                 "mask": np.arange(T)[None, :] < self.lengths[index][:, None],
                 "weights": (np.ones(len(index), np.float32) if real is None
                             else np.asarray(real, np.float32))}
        if self.labels is not None:
            batch["labels"] = self.labels[index]
        return batch


# The `predict` command's fields, as Hugging Face's `glue` data set names each task's columns.
PREDICT_FIELDS = {"cola": ("sentence",), "sst2": ("sentence",), "mrpc": ("sentence1", "sentence2"),
                  "stsb": ("sentence1", "sentence2"), "qnli": ("question", "sentence"),
                  "rte": ("sentence1", "sentence2"), "wnli": ("sentence1", "sentence2")}


PAIR_SEPARATOR = EOS  # elmo: the word between a pair's two texts


def lm_loss_sums(lm_logits_BTV, ids_BT, mask_BT, w_B, vocab_size):
    """(sum, count) of GPT's next-token cross-entropy: position t predicts t + 1, scored where
    t + 1 is a real text token (not padding, not an added token >= vocab_size) of a row of
    weight > 0; each scored token weighs the same."""
    targets_BT = ids_BT[:, 1:]
    scored_BT = mask_BT[:, 1:] & (targets_BT < vocab_size) & (w_B[:, None] > 0)
    _, nll_sum, n = cross_entropy_sums(lm_logits_BTV[:, :-1], jnp.where(scored_BT, targets_BT, 0),
                                       weights=scored_BT.astype(jnp.float32))
    return nll_sum, n


def check_frozen_backbone(opt_cfg) -> None:
    """model.freeze_backbone needs a frozen optimizer group over "backbone/" (else AdamW's
    weight decay still moves the frozen weights)."""
    for g in opt_cfg.get("param_groups") or ():
        g = g.to_dict() if isinstance(g, ml_collections.ConfigDict) else dict(g)
        if re.search(str(g.get("pattern", "")), "backbone/token_encoder/kernel"):
            if g.get("frozen"):
                return
            break  # the first matching group decides, as in training/optimizer.py
    raise ValueError("config.model.freeze_backbone=True: also set config.optimizer.param_groups="
                     "(param_group('^backbone/', frozen=True),) so that the optimizer leaves the "
                     "backbone alone")


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _predict_batch(graphdef, state, input_ids, segment_ids, mask):
    return nnx.merge(graphdef, state)(input_ids, segment_ids, mask)["logits"]


class Glue(FineTuneTask):
    head = "classification"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="glue",
            glue_task="sst2",   # sst2 | cola | mrpc | stsb | rte | wnli | qnli
            train_file="",      # "": $LLM_JAX_DATA_DIR/glue/<Task>/train.tsv; or a user's TSV
            eval_file="",       # "": .../dev.tsv (data.eval_split)
            test_file="",       # "": .../test.tsv (data.test_split, `eval --split`)
            lm_loss_weight=0.0,  # gpt backbone: > 0 adds GPT-1's auxiliary LM loss (paper: 0.5)
            train_examples=0,   # > 0: a fixed random subset of this many training examples
            eval_examples=0,    # > 0: the eval split's first this many examples
        ))

    def __init__(self, config, workdir: str, *, read_eval: bool = True):
        """`read_eval`: read and encode the eval split now, so that a bad file fails before
        training starts (False: the `predict` command, which needs no data)."""
        c, d, m = config.task, config.data, config.model
        self.cfg, self.data_cfg, self.workdir = c, d, workdir
        self.task = glue_task(c.glue_task)
        self.regression = LABEL_NAMES[self.task] is None
        self.check_model(config)
        want = 1 if self.regression else len(LABEL_NAMES[self.task])
        if m.num_labels != want:
            what = "a regression: one score" if self.regression else f"{want} classes"
            raise ValueError(f"config.task.glue_task={self.task!r} is {what}: set "
                             f"config.model.num_labels={want} (got {m.num_labels})")
        b = m.backbone
        self.family = b.get("name", "bert")
        kinds = LM_TOKENIZERS.get(self.family, TOKENIZER_KINDS)
        if d.tokenizer not in kinds:
            what = ("pairs with a BERT-family tokenizer" if kinds is TOKENIZER_KINDS else
                    f"a model.backbone.name={self.family!r} backbone's input")
            raise ValueError(f"config.data.tokenizer={d.tokenizer!r}: the glue task encodes "
                             f"{what}, one of {sorted(kinds)}")
        self.lm_loss_weight = float(c.get("lm_loss_weight", 0.0))
        if self.lm_loss_weight < 0 or (self.lm_loss_weight > 0 and self.family != "gpt"):
            raise ValueError(f"config.task.lm_loss_weight={self.lm_loss_weight}: the auxiliary LM "
                             "loss needs a weight >= 0 and model.backbone.name='gpt' (got "
                             f"{self.family!r})")
        if m.get("freeze_backbone", False):
            check_frozen_backbone(config.optimizer)
        self.max_len = check_seq_len(d, b)
        self.type_vocab_size = int(b.get("type_vocab_size", 2))
        self.batch_size = int(config.train.batch_size)
        self._splits: dict[str, GlueExamples] = {}
        self._raw: dict[str, object] = {}
        self.tokenizer = self._tokenizer(config.get("init_from", ""))
        # gpt: ids of the added start / delimiter / extract tokens (after the backbone's rows)
        self.special_base = int(b.get("vocab_size", 0) or m.get("vocab_size", 0)
                                or self.tokenizer.vocab_size)
        self.max_chars = int(b.get("max_chars", 0))
        if read_eval:
            self.split_tokens(d.eval_split)

    # -- data --------------------------------------------------------------------------

    def _file(self, split: str) -> str | None:
        d, c = self.data_cfg, self.cfg
        for role, field in ((d.train_split, "train_file"), (d.eval_split, "eval_file"),
                            (d.test_split, "test_file")):
            if split == role and c[field]:
                return c[field]
        return None

    def _read(self, split: str):
        if split not in self._raw:
            raw = read_glue(self.task, split, path=self._file(split), encoding=self.data_cfg.encoding)
            if self.workdir is not None:  # traced in WORKDIR/data_files.json, checked on re-reads
                data_record.record_split(self.workdir, f"glue.{raw.split}",
                                         TextSlice(raw.path, self.data_cfg.encoding))
            self._raw[split] = raw
        return self._raw[split]

    def _tokenizer(self, init_from: str):
        def sentences():
            raw = self._read(self.data_cfg.train_split)
            return raw.text_a + (raw.text_b or [])

        if self.family in LM_TOKENIZERS:
            return lm_tokenizer(self.workdir, self.data_cfg, init_from, sentences)
        return finetune_tokenizer(self.workdir, self.data_cfg, init_from, sentences)

    def _examples(self, name, path, text_a, text_b, labels) -> GlueExamples:
        if self.family == "gpt":
            fields = self._encode_gpt(path, text_a, text_b)
        elif self.family == "elmo":
            fields = self._encode_elmo(text_a, text_b)
        else:
            fields = dict(zip(("input_ids", "segment_ids", "lengths"),
                              self._encode(path, text_a, text_b)))
        return GlueExamples(name, str(path), labels=labels, **fields)

    def _encode_gpt(self, path, text_a, text_b) -> dict:
        """GPT-1's start + A [+ delimiter + B] + extract (module docstring)."""
        n, T = len(text_a), self.max_len
        start, delim, extract = (self.special_base + i for i in range(3))
        budget = T - (2 if text_b is None else 3)
        if budget < 2 - (text_b is None):
            raise ValueError(f"config.data.seq_len={T} leaves no room for text after GPT's "
                             "start, delimiter and extract tokens")
        ids = np.zeros((n, T), np.int32)
        lengths = np.zeros(n, np.int32)
        encode = self._gpt_encoder()
        for i in range(n):
            a = encode(text_a[i])
            if text_b is None:
                row = [start, *a[:budget], extract]
            else:
                b = encode(text_b[i])
                la, lb = truncate_longest_first(len(a), len(b), budget)
                row = [start, *a[:la], delim, *b[:lb], extract]
            ids[i, :len(row)] = row
            lengths[i] = len(row)
        return dict(input_ids=ids, segment_ids=np.zeros((n, T), np.int8), lengths=lengths)

    def _gpt_encoder(self):
        tok = self.tokenizer
        if isinstance(tok, CharTokenizer):
            known = set(tok.chars)
            return lambda s: tok.encode("".join(ch for ch in s if ch in known)).tolist()
        return lambda s: [int(i) for i in tok.encode(s)]

    def _encode_elmo(self, text_a, text_b) -> dict:
        """Whitespace words, a pair joined by PAIR_SEPARATOR; word indices into a char table."""
        n, T = len(text_a), self.max_len
        words = {"": 0}  # index 0: the padding word, all PAD
        ids = np.zeros((n, T), np.int32)
        lengths = np.zeros(n, np.int32)
        for i in range(n):
            a = text_a[i].split()
            if text_b is None:
                row = a[:T]
            else:
                b = text_b[i].split()
                la, lb = truncate_longest_first(len(a), len(b), T - 1)
                row = a[:la] + [PAIR_SEPARATOR] + b[:lb]
            ids[i, :len(row)] = [words.setdefault(w, len(words)) for w in row]
            lengths[i] = len(row)
        table = words_char_ids(list(words), self.max_chars)
        table[0] = PAD
        return dict(input_ids=ids, segment_ids=np.zeros((n, T), np.int8), lengths=lengths,
                    char_table=table)

    def _encode(self, path, text_a, text_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, T = len(text_a), self.max_len
        ids = np.zeros((n, T), np.int32)
        seg = np.zeros((n, T), np.int8)
        lengths = np.zeros(n, np.int32)
        for start in range(0, n, _ENCODE_CHUNK):
            end = min(start + _ENCODE_CHUNK, n)
            pairs = None if text_b is None else text_b[start:end]
            enc = self.tokenizer.encode_batch(text_a[start:end], pairs, max_length=T, pad_to=T)
            ids[start:end], seg[start:end] = enc["input_ids"], enc["segment_ids"]
            lengths[start:end] = enc["mask"].sum(1)
        if n and int(seg.max()) >= self.type_vocab_size:
            raise ValueError(f"{path}: the tokenizer gives segment ids up to {int(seg.max())}"
                             f" for {self.task}'s pairs: set config.model.backbone."
                             f"type_vocab_size >= {int(seg.max()) + 1}")
        return ids, seg, lengths

    def split_tokens(self, split: str) -> GlueExamples:
        """The split, encoded (train: task.train_examples' subset; eval: eval_examples')."""
        if split not in self._splits:
            raw = self._read(split)
            index = self.subset(split, len(raw))
            text_a = [raw.text_a[i] for i in index]
            text_b = None if raw.text_b is None else [raw.text_b[i] for i in index]
            labels = None
            if raw.labels is not None:
                labels = np.asarray(raw.labels, np.float32 if self.regression else np.int32)[index]
            self._splits[split] = self._examples(split, raw.path, text_a, text_b, labels)
        return self._splits[split]

    # -- loss and metrics --------------------------------------------------------------

    def loss(self, model, batch, dropout_key=None):
        """(mean over real rows of the cross-entropy or squared error [+ lm_loss_weight x the
        auxiliary LM loss], metrics)."""
        out = model(batch["input_ids"], batch["segment_ids"], batch["mask"],
                    dropout_key=dropout_key)
        logits = out["logits"]
        w_B, labels_B = batch["weights"], batch["labels"]
        n_tokens = jnp.sum(batch["mask"] & (w_B[:, None] > 0)).astype(jnp.float32)
        tiny = jnp.finfo(jnp.float32).tiny
        if self.regression:
            se_sum = weighted_sum(jnp.square(logits[:, 0] - labels_B.astype(jnp.float32)), w_B)
            n = jnp.sum(w_B)
            loss, metrics = se_sum / jnp.maximum(n, tiny), {"loss": (se_sum, n), NUM_TOKENS: n_tokens}
        else:
            _, nll_sum, n = cross_entropy_sums(logits, labels_B, weights=w_B)
            correct_B = (jnp.argmax(logits, -1) == labels_B).astype(jnp.float32)
            loss, metrics = nll_sum / jnp.maximum(n, tiny), {
                "loss": (nll_sum, n), "accuracy": mean_metric(correct_B, w_B), NUM_TOKENS: n_tokens}
        if self.lm_loss_weight > 0:
            lm_sum, lm_n = lm_loss_sums(out["lm_logits"], batch["input_ids"], batch["mask"], w_B,
                                        self.special_base)
            loss = loss + self.lm_loss_weight * lm_sum / jnp.maximum(lm_n, tiny)
            metrics["lm_loss"] = (lm_sum, lm_n)
        return loss, metrics

    def predict_logits(self, model, examples: GlueExamples) -> np.ndarray:
        """float32 [N, num_labels] logits (STS-B: [N, 1] scores) of every row, in order."""
        graphdef, state = nnx.split(model)
        out = []
        for batch in padded_batches(examples, self.batch_size, labelled=False):
            logits = _predict_batch(graphdef, state, batch["input_ids"], batch["segment_ids"],
                                    batch["mask"])
            out.append(np.asarray(logits)[batch["weights"] > 0])
        width = 1 if self.regression else len(LABEL_NAMES[self.task])
        return np.concatenate(out) if out else np.zeros((0, width), np.float32)

    def predict(self, model, examples: GlueExamples) -> np.ndarray:
        """Class ids (int) or STS-B scores (float) of every row of `examples`, in order."""
        logits = self.predict_logits(model, examples)
        return logits[:, 0] if self.regression else np.argmax(logits, -1)

    def parse_prediction_input(self, record) -> tuple[str, str | None]:
        """(sentence, None) or a pair of one `predict` input line: a JSON object with the
        task's PREDICT_FIELDS, or (single-sentence tasks) the line's text."""
        fields = PREDICT_FIELDS[self.task]
        if isinstance(record, str):
            if len(fields) == 1:
                return record, None
            raise ValueError(f"expected a JSON object with fields {fields[0]!r} and {fields[1]!r} "
                             f"(GLUE's {self.task} classifies pairs: plain text lines are read "
                             "only by single-sentence tasks)")
        texts = [text_field(record, f) for f in fields]
        return texts[0], texts[1] if len(texts) == 2 else None

    def predict_json(self, model, inputs: list[tuple[str, str | None]]) -> list[dict]:
        """{"label", "probabilities": {name: p}} (STS-B: {"score"}) of each input."""
        text_a = [a for a, _ in inputs]
        text_b = None if len(PREDICT_FIELDS[self.task]) == 1 else [b for _, b in inputs]
        examples = self._examples("predict", "the input", text_a, text_b, None)
        logits = self.predict_logits(model, examples).astype(np.float64)
        if self.regression:
            return [{"score": float(s)} for s in logits[:, 0]]
        names = LABEL_NAMES[self.task]
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return [{"label": names[int(np.argmax(row))],
                 "probabilities": {name: float(v) for name, v in zip(names, prob)}}
                for row, prob in zip(logits, p)]

    def decode_metrics(self, model, tokens=None, *, final: bool) -> dict:
        """GLUE's metrics of the whole split (`final` or not: see the module docstring)."""
        examples = self.valid if tokens is None else tokens
        examples.require_labels()
        with warnings.catch_warnings():  # scipy warns about a constant prediction
            warnings.simplefilter("ignore")
            scores = glue_metrics(self.task, self.predict(model, examples), examples.labels)
        # A constant prediction (early in training) has no correlation: 0, not NaN, so that
        # best-checkpoint selection can still compare it.
        scores = {k: 0.0 if math.isnan(v) else v for k, v in scores.items()}
        out = {f"glue_{k}": v for k, v in scores.items()}
        out["glue_score"] = scores.get("combined_score", next(iter(scores.values())))
        return out
