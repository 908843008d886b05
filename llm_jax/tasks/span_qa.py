"""Extractive question answering: SQuAD v1.1 (Rajpurkar et al., 2016) on a `finetune` model
(models/finetune.py) whose head is "span", as BERT does it (Devlin et al., 2019, section 4.2)
and Hugging Face's run_qa.py runs it.

Data: SQuAD v1.1 JSON files (data/squad_data.read_squad), recorded in WORKDIR/data_files.json
as "squad.<split>" (data.train_split, data.eval_split). By default both splits read
$LLM_JAX_DATA_DIR/squad/dev-v1.1.json, split by article: its first task.first_eval_article (38)
articles train and the other 10 evaluate (1,988 questions). That is NOT the official protocol,
and its numbers are not comparable with published ones; the official one is
task.train_file=.../train-v1.1.json (all of it trains) with the dev set evaluating, all of it
(task.eval_file, or "" for the data directory's dev-v1.1.json). The rule: when the two splits
read the same file, it is split by article; otherwise each file is used whole.
task.train_examples (a fixed random subset of the training questions) and eval_examples (the
eval split's first questions) cut a split down, for quick runs.

Windows: data/squad_data.make_windows, "[CLS] question [SEP] context [SEP]" of data.seq_len
(384) tokens, questions cut to task.max_query_len (64), long contexts in windows that share
task.doc_stride (128) tokens, by the pre-trained run's tokenizer (tasks/finetune_inputs.py).
Training reads every window of the training questions, in ExampleBatches' seeded, resumable
order; a window that does not hold the whole answer points both ends at [CLS] (position 0),
as BERT and run_qa.py train.

Loss (BERT's, HF's BertForQuestionAnswering): the mean of the start and the end cross-entropy
over all of a window's positions, each a mean over the batch's windows. Metrics as (sum,
weight): "loss", its parts "start_loss" and "end_loss", and "start_accuracy" / "end_accuracy"
(the argmax is the gold position, 0-1, per window). Every eval also answers every question of
the whole eval split (at periodic evals too, so that the values the best checkpoint is chosen
by are comparable): the logits of all its windows, the best span over them
(squad_data.decode_spans: the top task.n_best (20) starts x ends, on context tokens, at most
task.max_answer_len (30) tokens), scored by the official script's EM and F1
(evaluation/squad_metrics.py, 0-100) as "squad_exact_match" and "squad_f1", so
train.best_metric="eval/squad_f1" keeps the best checkpoint.

Prediction (the `predict` command): one {"question", "context"[, "id"]} object a line, answered
with {"id", "answer", "start", "end", "score"}: the best span's text, its [start, end)
characters in the context and its start + end logit ("" and nulls where no window has a valid
span).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from llm_jax.data import data_record
from llm_jax.data.corpora import UnknownSplitError
from llm_jax.data.example_batches import padded_batches
from llm_jax.data.paths import require_file
from llm_jax.data.squad_data import (
    DATASET,
    DEV_FILE,
    TRAIN_ARTICLES,
    Span,
    SquadExample,
    SquadFeatures,
    make_windows,
    nbest_spans,
    read_squad,
    split_articles,
)
from llm_jax.data.text_files import TextSlice
from llm_jax.evaluation.squad_metrics import squad_scores
from llm_jax.ops.losses import cross_entropy_sums
from llm_jax.tasks.finetune_inputs import check_seq_len, finetune_tokenizer, json_type, text_field
from llm_jax.tasks.finetune_task import FineTuneTask
from llm_jax.tasks.masked_lm import TOKENIZER_KINDS
from llm_jax.tasks.protocols import NUM_TOKENS, mean_metric


@dataclasses.dataclass
class SquadWindows:
    """One split's windows: what `split_tokens` returns and eval_batches / predict read."""
    name: str                # the split as config.data names it ("predict": the command's)
    path: str                # the file it came from
    features: SquadFeatures

    def __len__(self) -> int:
        return len(self.features)

    @property
    def examples(self) -> list[SquadExample]:
        return self.features.examples

    def gold(self) -> dict[str, list[str]]:
        """{question id: its answer texts}, for squad_scores."""
        return {e.id: [a["text"] for a in e.answers] for e in self.examples if e.answers}

    def rows(self, index, real=None, *, labelled=True) -> dict:
        """The batch of windows `index` (weight 0 where `real` is False). Every window has
        start/end positions (0 when it holds no answer), so `labelled` changes nothing."""
        batch = self.features.batch(np.asarray(index))
        batch["weights"] = (np.ones(len(index), np.float32) if real is None
                            else np.asarray(real, np.float32))
        return batch


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _span_logits(graphdef, state, input_ids, segment_ids, mask):
    out = nnx.merge(graphdef, state)(input_ids, segment_ids, mask)
    return out["start_logits"], out["end_logits"]


class SpanQA(FineTuneTask):
    head = "span"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="span_qa",
            train_file="",      # "": $LLM_JAX_DATA_DIR/squad/dev-v1.1.json; or train-v1.1.json
            eval_file="",       # "": the same dev-v1.1.json (split by article if train's too)
            first_eval_article=TRAIN_ARTICLES,  # one file for both: its articles [0, this) train
            doc_stride=128,     # tokens consecutive windows of a context share (run_qa.py's)
            max_query_len=64,   # question tokens kept (BERT's run_squad.py)
            n_best=20,          # starts and ends searched per window (run_qa.py's)
            max_answer_len=30,  # longest answer, in tokens (run_qa.py's)
            train_examples=0,   # > 0: a fixed random subset of this many training questions
            eval_examples=0,    # > 0: the eval split's first this many questions
        ))

    def __init__(self, config, workdir: str, *, read_eval: bool = True):
        """`read_eval`: read and window the eval split now, so that a bad file fails before
        training starts (False: the `predict` command, which needs no data)."""
        c, d, m = config.task, config.data, config.model
        self.cfg, self.data_cfg, self.workdir = c, d, workdir
        self.check_model(config)
        if d.tokenizer not in TOKENIZER_KINDS:
            raise ValueError(f"config.data.tokenizer={d.tokenizer!r}: the span_qa task encodes "
                             f"question/context pairs with a BERT-family tokenizer, one of "
                             f"{sorted(TOKENIZER_KINDS)}")
        for field in ("doc_stride", "max_query_len", "n_best", "max_answer_len", "first_eval_article"):
            if c[field] < 1:
                raise ValueError(f"config.task.{field}={c[field]} must be >= 1")
        self.max_len = check_seq_len(d, m.backbone)
        self.batch_size = int(config.train.batch_size)
        self._files: dict[str, list[SquadExample]] = {}
        self._splits: dict[str, SquadWindows] = {}

        def sentences():
            examples = self._examples(d.train_split)
            return list(dict.fromkeys(e.context for e in examples)) + [e.question for e in examples]

        self.tokenizer = finetune_tokenizer(workdir, d, config.get("init_from", ""), sentences)
        if read_eval:
            self.split_tokens(d.eval_split)

    # -- data --------------------------------------------------------------------------

    def _path(self, field: str) -> pathlib.Path:
        given = self.cfg[field]
        return pathlib.Path(given).expanduser() if given else require_file(DATASET, DEV_FILE)

    def _read(self, path: pathlib.Path) -> list[SquadExample]:
        key = os.path.realpath(path)
        if key not in self._files:
            self._files[key] = read_squad(path)
        return self._files[key]

    def _examples(self, split: str) -> list[SquadExample]:
        """The questions of a split (see the module docstring for which file and articles)."""
        d, c = self.data_cfg, self.cfg
        roles = {d.eval_split: "eval_file", d.train_split: "train_file"}
        if split not in roles:
            raise UnknownSplitError(f"split {split!r}: the span_qa task reads "
                                    f"{d.train_split!r} (task.train_file) and {d.eval_split!r} "
                                    "(task.eval_file)")
        train_path, eval_path = self._path("train_file"), self._path("eval_file")
        path = train_path if roles[split] == "train_file" else eval_path
        examples = self._read(path)
        if self.workdir is not None:  # traced in WORKDIR/data_files.json, checked on re-reads
            data_record.record_split(self.workdir, f"squad.{split}", TextSlice(path, "utf-8"))
        if os.path.realpath(train_path) == os.path.realpath(eval_path):
            n_articles = len({e.article for e in examples})
            if not c.first_eval_article < n_articles:
                raise ValueError(f"config.task.first_eval_article={c.first_eval_article}: {path} "
                                 f"has {n_articles} articles, and both splits read it, so it must "
                                 "leave some to evaluate on (or give task.train_file and eval_file)")
            train, held_out = split_articles(examples, c.first_eval_article)
            examples = train if roles[split] == "train_file" else held_out
        return [examples[i] for i in self.subset(split, len(examples))]

    def windows(self, examples, name: str, path: str) -> SquadWindows:
        """`examples` (SquadExamples) in windows, as the task's config lays them out."""
        c, d = self.cfg, self.data_cfg
        try:
            features = make_windows(examples, self.tokenizer, max_len=self.max_len,
                                    doc_stride=c.doc_stride, max_query_len=c.max_query_len)
        except ValueError as e:
            raise ValueError(f"{path}: config.data.seq_len={d.seq_len}, task.doc_stride="
                             f"{c.doc_stride}, task.max_query_len={c.max_query_len}: {e}") from None
        return SquadWindows(name, path, features)

    def split_tokens(self, split: str) -> SquadWindows:
        """The split's windows (`eval --split` names data.train_split or data.eval_split)."""
        if split not in self._splits:
            field = "train_file" if split == self.data_cfg.train_split else "eval_file"
            examples = self._examples(split)
            self._splits[split] = self.windows(examples, split, str(self._path(field)))
        return self._splits[split]

    # -- loss and metrics --------------------------------------------------------------

    def loss(self, model, batch, dropout_key=None):
        """((start CE + end CE) / 2, each a mean over the batch's windows; metrics)."""
        out = model(batch["input_ids"], batch["segment_ids"], batch["mask"], dropout_key=dropout_key)
        w_B = batch["weights"]
        _, start_sum, n = cross_entropy_sums(out["start_logits"], batch["start_positions"], weights=w_B)
        _, end_sum, _ = cross_entropy_sums(out["end_logits"], batch["end_positions"], weights=w_B)
        total = 0.5 * (start_sum + end_sum)
        start_right = jnp.argmax(out["start_logits"], -1) == batch["start_positions"]
        end_right = jnp.argmax(out["end_logits"], -1) == batch["end_positions"]
        n_tokens = jnp.sum(batch["mask"] & (w_B[:, None] > 0)).astype(jnp.float32)
        return total / jnp.maximum(n, jnp.finfo(jnp.float32).tiny), {
            "loss": (total, n), "start_loss": (start_sum, n), "end_loss": (end_sum, n),
            "start_accuracy": mean_metric(start_right, w_B),
            "end_accuracy": mean_metric(end_right, w_B), NUM_TOKENS: n_tokens}

    def predict(self, model, windows: SquadWindows) -> tuple[np.ndarray, np.ndarray]:
        """(start_logits, end_logits), float32 [windows, max_len] each, in window order."""
        graphdef, state = nnx.split(model)
        starts, ends = [], []
        for batch in padded_batches(windows, self.batch_size, labelled=False):
            real = batch["weights"] > 0
            s, e = _span_logits(graphdef, state, batch["input_ids"], batch["segment_ids"],
                                batch["mask"])
            starts.append(np.asarray(s)[real])
            ends.append(np.asarray(e)[real])
        if not starts:
            return np.zeros((0, self.max_len), np.float32), np.zeros((0, self.max_len), np.float32)
        return np.concatenate(starts), np.concatenate(ends)

    def best_spans(self, windows: SquadWindows, start_logits, end_logits) -> dict[str, Span | None]:
        """{question id: its best span over all its windows (None: no valid span)}."""
        best = nbest_spans(windows.features, start_logits, end_logits, n_best=self.cfg.n_best,
                           max_answer_len=self.cfg.max_answer_len)
        return {qid: spans[0] if spans else None for qid, spans in best.items()}

    def span_scores(self, windows: SquadWindows, start_logits, end_logits) -> dict:
        """The official EM and F1 (0-100) of the decoded answers against the split's."""
        answers = {qid: span.text if span else ""
                   for qid, span in self.best_spans(windows, start_logits, end_logits).items()}
        gold = windows.gold()
        if not gold:
            raise ValueError(f"{windows.path} (split {windows.name!r}): no question has an "
                             "answer to score against")
        s = squad_scores(answers, gold)
        return {"squad_exact_match": s["exact_match"], "squad_f1": s["f1"]}

    def decode_metrics(self, model, tokens=None, *, final: bool) -> dict:
        """EM and F1 of the whole split at every eval (`final` or not: see the docstring)."""
        windows = self.valid if tokens is None else tokens
        return self.span_scores(windows, *self.predict(model, windows))

    # -- the predict command -----------------------------------------------------------

    def parse_prediction_input(self, record) -> tuple:
        """(id or None, question, context) of one input line (a JSON object)."""
        if not isinstance(record, dict):
            raise ValueError("expected a JSON object with fields 'question' and 'context' "
                             "(and optionally 'id')")
        qid = record.get("id")
        if qid is not None and (isinstance(qid, bool) or not isinstance(qid, (str, int))):
            raise ValueError(f"field 'id': expected a string or an integer, got {json_type(qid)}")
        return (qid, text_field(record, "question", nonempty=True),
                text_field(record, "context", nonempty=True))

    def predict_json(self, model, inputs: list[tuple]) -> list[dict]:
        """{"id", "answer", "start", "end", "score"} of each (id, question, context)."""
        # ids inside are positions: a user's ids may repeat or be missing
        examples = [SquadExample(str(i), "", context, question, [], 0)
                    for i, (_, question, context) in enumerate(inputs)]
        windows = self.windows(examples, "predict", "the input")
        best = self.best_spans(windows, *self.predict(model, windows))
        out = []
        for i, (qid, _, _) in enumerate(inputs):
            span = best[str(i)]
            if span is None:
                out.append({"id": qid, "answer": "", "start": None, "end": None, "score": None})
            else:
                out.append({"id": qid, "answer": span.text, "start": span.char_start,
                            "end": span.char_end, "score": span.score})
        return out
