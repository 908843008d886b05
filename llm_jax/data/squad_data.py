"""SQuAD v1.1 extractive QA: the official JSON, doc-stride windows, and span decoding.

`read_squad` reads the official layout ({"data": [{"title", "paragraphs": [{"context", "qas":
[{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}) and checks every field, so a
bad file fails with its path and the JSON path of the field (data[3].paragraphs[2].qas[5]...).

`make_windows` lays out "[CLS] question [SEP] context [SEP]" (the tokenizer's own pair layout:
RoBERTa's `<s> q </s></s> c </s>`, ALBERT's as BERT's) and splits a long context into
overlapping windows the way Hugging Face's run_qa.py does (truncation="only_second",
return_overflowing_tokens): every window holds as many context tokens as fit, and consecutive
windows share `doc_stride` tokens. The tokenizers expose pair encoding with offsets and
truncation but no overflowing windows, so the question and each distinct context are tokenised
once, alone, and the windows are cut here from the context's tokens; the special tokens and
segment ids come from the tokenizer's pair encoding of a probe pair. Questions are cut to
`max_query_len` tokens, as in the original BERT run_squad.py (run_qa.py keeps them whole).

`decode_spans` maps start/end logits back to answer text: over all windows of an example, the
best span by start + end logit among the top `n_best` starts x top `n_best` ends (run_qa.py's
search), both ends on context tokens, end >= start, at most `max_answer_len` tokens; the text is
the original context between the first token's start and the last token's end characters.

The evaluation protocol here is NOT the official one. The official one trains on
train-v1.1.json (442 articles) and reports on all 48 articles of dev-v1.1.json; this
repository's data directory holds only the dev set, so `split_articles` trains on its first 38
articles and evaluates on the last 10 (1,988 questions). Split by article, no evaluation
paragraph or topic is seen in training, but the numbers are not comparable with published ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from llm_jax.data.paths import require_file

DATASET, DEV_FILE = "squad", "dev-v1.1.json"
TRAIN_ARTICLES = 38  # of dev-v1.1.json's 48: this repository's split (see the module docstring)
_JSON_TYPES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


@dataclasses.dataclass(frozen=True)
class SquadExample:
    id: str
    title: str
    context: str
    question: str
    answers: list[dict[str, Any]]  # [{"text": str, "answer_start": int}], the first is trained on
    article: int  # the article's index in the file, for split_articles


def _get(obj: Any, key: str, kind: type, where: str, path: pathlib.Path) -> Any:
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: {where or 'the top level'}: expected an object, got "
                         f"{type(obj).__name__}")
    where = f"{where}.{key}" if where else key
    if key not in obj:
        raise ValueError(f"{path}: {where}: missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{path}: {where}: expected {_JSON_TYPES[kind]}, got {value!r:.60}")
    return value


def read_squad(path: os.PathLike | str | None = None) -> list[SquadExample]:
    """Every question of a SQuAD v1.1 JSON file, in file order; `path` defaults to
    $LLM_JAX_DATA_DIR/squad/dev-v1.1.json (MissingDataError if absent)."""
    path = pathlib.Path(path) if path is not None else require_file(DATASET, DEV_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (a SQuAD JSON file)")
    try:
        root = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not UTF-8 JSON ({e})") from None
    examples, seen = [], {}
    for a, article in enumerate(_get(root, "data", list, "", path)):
        at = f"data[{a}]"
        title = _get(article, "title", str, at, path)
        for p, paragraph in enumerate(_get(article, "paragraphs", list, at, path)):
            pt = f"{at}.paragraphs[{p}]"
            context = _get(paragraph, "context", str, pt, path)
            for q, qa in enumerate(_get(paragraph, "qas", list, pt, path)):
                qt = f"{pt}.qas[{q}]"
                qid = _get(qa, "id", str, qt, path)
                if qid in seen:
                    raise ValueError(f"{path}: {qt}.id: {qid!r} is also the id of {seen[qid]}")
                seen[qid] = qt
                question = _get(qa, "question", str, qt, path)
                answers = []
                for n, answer in enumerate(_get(qa, "answers", list, qt, path)):
                    nt = f"{qt}.answers[{n}]"
                    text = _get(answer, "text", str, nt, path)
                    start = _get(answer, "answer_start", int, nt, path)
                    found = context[start:start + len(text)] if start >= 0 else None
                    if found != text:
                        raise ValueError(f"{path}: {nt}.answer_start: the context at {start} reads "
                                         f"{found!r:.80}, not the answer text {text!r:.80}")
                    answers.append({"text": text, "answer_start": start})
                examples.append(SquadExample(qid, title, context, question, answers, a))
    return examples


def split_articles(examples: Sequence[SquadExample], first_n: int = TRAIN_ARTICLES
                   ) -> tuple[list[SquadExample], list[SquadExample]]:
    """(the examples of the first `first_n` articles, those of the rest): this repository's
    train/evaluation split of dev-v1.1.json (38 / 10 articles), not the official protocol."""
    articles = sorted({e.article for e in examples})
    if not 0 < first_n < len(articles):
        raise ValueError(f"split_articles: first_n={first_n} must leave articles on both sides "
                         f"of the split ({len(articles)} articles)")
    cut = articles[first_n]
    return [e for e in examples if e.article < cut], [e for e in examples if e.article >= cut]


@dataclasses.dataclass
class SquadFeatures:
    """One row per window, padded to max_len. `segment_ids` are BERT's token type ids (all 0 for
    RoBERTa); `offsets` are [start, end) characters in the example's context for context tokens
    and -1 for question, special and padding tokens; `start_positions` / `end_positions` are
    the answer's first and last token in the window (0, the [CLS] token, when the window does
    not hold the whole answer); `window_start` is the window's first token among the context's."""

    examples: list[SquadExample]
    input_ids: np.ndarray  # int32[F, T]
    segment_ids: np.ndarray  # int32[F, T]
    mask: np.ndarray  # bool[F, T], True at real tokens
    offsets: np.ndarray  # int32[F, T, 2]
    example_index: np.ndarray  # int32[F], into `examples`
    start_positions: np.ndarray  # int32[F]
    end_positions: np.ndarray  # int32[F]
    window_start: np.ndarray  # int32[F]

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, index: Any = slice(None)) -> dict[str, np.ndarray]:
        """The model and loss inputs of the rows `index`."""
        return {"input_ids": self.input_ids[index], "segment_ids": self.segment_ids[index],
                "mask": self.mask[index], "start_positions": self.start_positions[index],
                "end_positions": self.end_positions[index]}


class _Layout(NamedTuple):
    parts: tuple[tuple[np.ndarray, np.ndarray], ...]  # (ids, segment ids) before q, between, after c
    question_segment: int
    context_segment: int


def _layout(tokenizer) -> _Layout:
    """The special tokens around each text of a pair, read off the tokenizer's own pair encoding."""
    probe = tokenizer.encode_batch(["a"], ["a"])
    real = probe["mask"][0]
    ids, seg, seq = (probe[k][0][real] for k in ("input_ids", "segment_ids", "sequence_ids"))
    q, c = np.flatnonzero(seq == 0), np.flatnonzero(seq == 1)
    if not len(q) or not len(c):
        raise ValueError(f"{type(tokenizer).__name__}: the probe pair ('a', 'a') has no tokens")
    bounds = [(0, q[0]), (q[-1] + 1, c[0]), (c[-1] + 1, len(ids))]
    if q[-1] > c[0] or (seq[np.r_[0:q[0], q[-1] + 1:c[0], c[-1] + 1:len(ids)]] != -1).any() or q[0] == 0:
        raise ValueError(f"{type(tokenizer).__name__}: expected the pair layout "
                         "[CLS] question [SEP] context [SEP] (specials around each text)")
    return _Layout(tuple((ids[a:b], seg[a:b]) for a, b in bounds), int(seg[q[0]]), int(seg[c[0]]))


def _pieces(tokenizer, texts: Sequence[str], chunk: int = 512) -> list[tuple[np.ndarray, np.ndarray]]:
    # In chunks, since encode_batch pads every text to the longest.
    out = []
    for i in range(0, len(texts), chunk):
        b = tokenizer.encode_batch(list(texts[i:i + chunk]), add_special_tokens=False)
        for j, n in enumerate(b["mask"].sum(1)):
            out.append((b["input_ids"][j, :n], b["offsets"][j, :n]))
    return out


def _answer_tokens(offsets: np.ndarray, example: SquadExample) -> tuple[int, int]:
    """The context tokens (first, last) covering the first answer's characters; (-1, -1) if none."""
    if not example.answers:
        return -1, -1
    start_char = example.answers[0]["answer_start"]
    end_char = start_char + len(example.answers[0]["text"])
    first = int(np.searchsorted(offsets[:, 1], start_char, side="right"))  # ends after start_char
    last = int(np.searchsorted(offsets[:, 0], end_char, side="left")) - 1  # starts before end_char
    return (first, last) if first <= last else (-1, -1)


def _window_starts(n_tokens: int, per_window: int, doc_stride: int) -> range:
    # As the tokenizers library cuts overflowing tokens: a step of per_window - doc_stride, until
    # a window reaches the last token; one (maybe empty) window for a short context.
    step = per_window - doc_stride
    return range(0, max(n_tokens - doc_stride, 1), step)


def make_windows(examples: Sequence[SquadExample], tokenizer, max_len: int = 384,
                 doc_stride: int = 128, max_query_len: int = 64) -> SquadFeatures:
    """Question + context windows of every example (at least one each), in example order.
    `tokenizer` is a BERT-family tokenizer (bert_tokenizers.py): `encode_batch` with pairs,
    offsets and sequence ids."""
    examples = list(examples)
    layout = _layout(tokenizer)
    (pre_ids, pre_seg), (mid_ids, mid_seg), (end_ids, end_seg) = layout.parts
    n_special = len(pre_ids) + len(mid_ids) + len(end_ids)
    if max_query_len < 1 or max_len <= n_special + max_query_len:
        raise ValueError(f"max_len={max_len} leaves no context tokens beside {n_special} special "
                         f"tokens and max_query_len={max_query_len} question tokens")
    contexts = list(dict.fromkeys(e.context for e in examples))
    context_pieces = dict(zip(contexts, _pieces(tokenizer, contexts)))
    questions = _pieces(tokenizer, [e.question for e in examples])
    keys = ("input_ids", "segment_ids", "offsets", "example_index", "start_positions",
            "end_positions", "window_start", "length")
    rows: dict[str, list] = {k: [] for k in keys}
    for i, example in enumerate(examples):
        q_ids = questions[i][0][:max_query_len]
        c_ids, c_offsets = context_pieces[example.context]
        per_window = max_len - n_special - len(q_ids)
        if per_window <= doc_stride:
            raise ValueError(f"example {example.id!r}: max_len={max_len} leaves {per_window} context "
                             f"tokens a window, which must be more than doc_stride={doc_stride}")
        first, last = _answer_tokens(c_offsets, example)
        c_begin = len(pre_ids) + len(q_ids) + len(mid_ids)  # the window's first context position
        head_ids = np.concatenate([pre_ids, q_ids, mid_ids])
        head_seg = np.concatenate([pre_seg, np.full(len(q_ids), layout.question_segment), mid_seg])
        for start in _window_starts(len(c_ids), per_window, doc_stride):
            stop = min(start + per_window, len(c_ids))
            ids = np.concatenate([head_ids, c_ids[start:stop], end_ids])
            seg = np.concatenate([head_seg, np.full(stop - start, layout.context_segment), end_seg])
            offsets = np.full((max_len, 2), -1, np.int32)
            offsets[c_begin:c_begin + stop - start] = c_offsets[start:stop]
            inside = first >= 0 and start <= first and last < stop
            rows["input_ids"].append(np.pad(ids, (0, max_len - len(ids)),
                                            constant_values=tokenizer.special_ids["pad"]))
            rows["segment_ids"].append(np.pad(seg, (0, max_len - len(seg))))
            rows["offsets"].append(offsets)
            rows["example_index"].append(i)
            rows["start_positions"].append(c_begin + first - start if inside else 0)
            rows["end_positions"].append(c_begin + last - start if inside else 0)
            rows["window_start"].append(start)
            rows["length"].append(len(ids))
    arrays = {k: np.asarray(rows[k], np.int32) for k in keys}
    arrays["input_ids"] = arrays["input_ids"].reshape(-1, max_len)
    arrays["segment_ids"] = arrays["segment_ids"].reshape(-1, max_len)
    arrays["offsets"] = arrays["offsets"].reshape(-1, max_len, 2)
    arrays["mask"] = np.arange(max_len) < arrays.pop("length")[:, None]
    return SquadFeatures(examples, **arrays)


class Span(NamedTuple):
    text: str
    score: float  # start_logit + end_logit
    start_logit: float
    end_logit: float
    char_start: int  # [char_start, char_end) in the example's context
    char_end: int


def nbest_spans(features: SquadFeatures, start_logits: Any, end_logits: Any, n_best: int = 20,
                max_answer_len: int = 30) -> dict[str, list[Span]]:
    """{question id: its best `n_best` distinct spans over all its windows, best first}; an
    example whose windows hold no valid span gets []."""
    start_logits = np.asarray(start_logits, np.float32)
    end_logits = np.asarray(end_logits, np.float32)
    for name, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
        if logits.shape != features.input_ids.shape:
            raise ValueError(f"{name} has shape {logits.shape}, expected {features.input_ids.shape} "
                             "(features x max_len)")
    context = features.offsets[..., 0] >= 0
    found: list[dict[tuple[int, int], Span]] = [{} for _ in features.examples]
    for f in range(len(features)):
        valid = np.flatnonzero(context[f])
        if not len(valid):
            continue
        s_top = valid[np.argsort(-start_logits[f, valid], kind="stable")[:n_best]]
        e_top = valid[np.argsort(-end_logits[f, valid], kind="stable")[:n_best]]
        s, e = np.meshgrid(s_top, e_top, indexing="ij")
        ok = (e >= s) & (e - s < max_answer_len)
        scores = np.where(ok, start_logits[f, s] + end_logits[f, e], -np.inf).ravel()
        # A window's best n_best are enough: the example's n_best distinct spans are among them.
        best = np.argsort(-scores, kind="stable")[:min(n_best, int(ok.sum()))]
        example = features.examples[features.example_index[f]]
        spans = found[features.example_index[f]]
        for a, b in zip(s.ravel()[best], e.ravel()[best]):
            chars = int(features.offsets[f, a, 0]), int(features.offsets[f, b, 1])
            sl, el = float(start_logits[f, a]), float(end_logits[f, b])
            if chars not in spans or spans[chars].score < sl + el:
                spans[chars] = Span(example.context[chars[0]:chars[1]], sl + el, sl, el, *chars)
    return {ex.id: sorted(spans.values(), key=lambda span: -span.score)[:n_best]
            for ex, spans in zip(features.examples, found)}


def decode_spans(features: SquadFeatures, start_logits: Any, end_logits: Any, n_best: int = 20,
                 max_answer_len: int = 30) -> dict[str, str]:
    """{question id: the text of its best span} (see nbest_spans); "" where there is none."""
    best = nbest_spans(features, start_logits, end_logits, n_best, max_answer_len)
    return {qid: spans[0].text if spans else "" for qid, spans in best.items()}
