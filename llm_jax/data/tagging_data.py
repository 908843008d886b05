"""Token tagging and intent + slot files as strings: CoNLL-2003 NER, ATIS and SNIPS.

    read_conll2003("train")                   # $LLM_JAX_DATA_DIR/conll2003/train.txt
    read_intent_slots("atis", "test")         # $LLM_JAX_DATA_DIR/atis/test/{seq.in,seq.out,label}
    names = tag_names(read_intent_slots("atis", "train"))

Splits are "train", "valid" ("dev" is read as "valid", JointBERT's name for it) and "test".

CoNLL-2003 (`token POS chunk NER`, one token a line, a blank line between sentences,
`-DOCSTART- -X- -X- O` between documents): only the NER column is kept. Tags are returned in
IOB2 (every entity starts with B-). The copy in the data directory is already IOB2, the
widely mirrored one that Hugging Face's `conll2003` reads; the original `eng.*` files are
IOB1 (B- only between two adjacent entities of one type), so an I-X that does not continue an
X entity is rewritten as B-X. That is a no-op on IOB2 input, and `TaggedSplit.retagged` counts
the tags it changed, so a user's IOB1 file reads as the mirror does.

ATIS and SNIPS (the slot-gated / JointBERT layout): `seq.in` words, `seq.out` BIO slot tags,
`label` intent, one utterance a line. Joint intents (`atis_flight#atis_airfare`) stay one label.

Label vocabularies come from the train split alone, as JointBERT builds them, with an "UNK"
entry that every intent or tag seen only in dev/test maps to (JointBERT's data_loader does
the same; ATIS's test split has intents and slot tags that train lacks):
- intent_names: "UNK", then the train intents sorted;
- tag_names: "O", "UNK", then the train tags sorted by (type, prefix), so B-X and I-X sit
  together: JointBERT's order without its "PAD" (padding here is a weight, not a label).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re

from llm_jax.data.paths import MissingDataError, read_lines, require_file_in_layout

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"dev": "valid", "validation": "valid"}
INTENT_CORPORA = ("atis", "snips")
UNK = "UNK"
_TAG = re.compile(r"O|[BI]-\S+")
CONLL_LAYOUT = ("conll2003/{train,valid,test}.txt: one token a line as 'word POS chunk NER' "
                "(space-separated), a blank line between sentences, '-DOCSTART- -X- -X- O' "
                "between documents")
INTENT_LAYOUT = ("{corpus}/{{train,valid,test}}/ each holding seq.in (words), seq.out (one BIO slot "
                 "tag per word) and label (one intent), one utterance a line, as in the slot-gated "
                 "SLU / JointBERT release")


@dataclasses.dataclass
class TaggedSplit:
    """CoNLL-2003 sentences: words and their IOB2 NER tags."""

    tokens: list[list[str]]
    tags: list[list[str]]
    doc_ids: list[int]  # the document (0, 1, ... in file order) each sentence is in
    path: pathlib.Path
    retagged: int = 0  # I- tags rewritten as B- to turn IOB1 into IOB2 (0 for IOB2 input)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclasses.dataclass
class IntentSlotSplit:
    """Utterances with one slot tag per word and one intent each."""

    corpus: str
    words: list[list[str]]
    tags: list[list[str]]
    intents: list[str]
    path: pathlib.Path  # the split's folder

    def __len__(self) -> int:
        return len(self.words)


def _split(split: str) -> str:
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)} (or 'dev')")
    return split


def _user_file(path: str | os.PathLike, what: str, layout: str) -> pathlib.Path:
    file = pathlib.Path(path).expanduser()
    if not file.is_file():
        raise MissingDataError(f"{file}: no such file ({what}); expected {layout}")
    return file


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """IOB2 tags of one sentence: an I-X that does not follow B-X or I-X becomes B-X."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def read_conll2003(split: str, path: str | os.PathLike | None = None,
                   encoding: str = "utf-8") -> TaggedSplit:
    """CoNLL-2003 NER from $LLM_JAX_DATA_DIR/conll2003/<split>.txt, or a file of the same format.

    A line that is not four space-separated columns, or a NER tag that is not O, B-TYPE or
    I-TYPE, raises ValueError("FILE:LINE: field 'NAME': ...").
    """
    split = _split(split)
    if path is None:
        file = require_file_in_layout("conll2003", f"{split}.txt", CONLL_LAYOUT)
    else:
        file = _user_file(path, f"CoNLL-2003 {split}", CONLL_LAYOUT)
    tokens, tags, doc_ids = [], [], []
    words, ner, retagged = [], [], 0
    doc = -1  # the first -DOCSTART- opens document 0; a file without any is all document 0

    def end_sentence():
        nonlocal words, ner, retagged
        if words:
            iob2 = iob1_to_iob2(ner)
            retagged += sum(a != b for a, b in zip(ner, iob2))
            tokens.append(words)
            tags.append(iob2)
            doc_ids.append(max(doc, 0))
        words, ner = [], []

    for n, line in enumerate(read_lines(file, encoding), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            end_sentence()
            doc += bool(fields)
            continue
        if len(fields) != 4:
            raise ValueError(f"{file}:{n}: field 'columns': expected 4 space-separated columns "
                             f"(word POS chunk NER), got {len(fields)} in {line[:60]!r}")
        if not _TAG.fullmatch(fields[3]):
            raise ValueError(f"{file}:{n}: field 'NER': expected O, B-TYPE or I-TYPE, "
                             f"got {fields[3]!r}")
        words.append(fields[0])
        ner.append(fields[3])
    end_sentence()
    if not tokens:
        raise ValueError(f"{file}:1: field 'columns': no sentences in the file; expected {CONLL_LAYOUT}")
    return TaggedSplit(tokens, tags, doc_ids, file, retagged)


def read_intent_slots(corpus: str, split: str, path: str | os.PathLike | None = None,
                      encoding: str = "utf-8") -> IntentSlotSplit:
    """ATIS or SNIPS from $LLM_JAX_DATA_DIR/<corpus>/<split>/, or the folder `path` (same files).

    `corpus` is "atis" or "snips" for the data directory; with `path` it only names the data.
    The three files must have one line per utterance each and seq.out one tag per word of
    seq.in, else ValueError("FILE:LINE: field 'NAME': ...").
    """
    split = _split(split)
    layout = INTENT_LAYOUT.format(corpus=corpus)
    names = ("seq.in", "seq.out", "label")
    if path is None:
        if corpus not in INTENT_CORPORA:
            raise ValueError(f"intent corpus {corpus!r}: expected one of {', '.join(INTENT_CORPORA)}")
        files = [require_file_in_layout(corpus, f"{split}/{name}", layout) for name in names]
    else:
        folder = pathlib.Path(path).expanduser()
        files = [_user_file(folder / name, f"{corpus} {split}", layout) for name in names]
    lines = [read_lines(f, encoding) for f in files]
    fields = ("words", "slots", "intent")
    for f, field, ls in zip(files[1:], fields[1:], lines[1:]):
        if len(ls) != len(lines[0]):
            n = min(len(ls), len(lines[0])) + 1
            raise ValueError(f"{f}:{n}: field {field!r}: {f.name} has {len(ls)} lines but "
                             f"{files[0]} has {len(lines[0])}; expected one line per utterance")
    words, tags, intents = [], [], []
    for n, (text, slots, intent) in enumerate(zip(*lines), start=1):
        w, t, i = text.split(), slots.split(), intent.split()
        if not w:
            raise ValueError(f"{files[0]}:{n}: field 'words': empty line; expected an utterance")
        if len(t) != len(w):
            raise ValueError(f"{files[1]}:{n}: field 'slots': {len(t)} tags for the {len(w)} "
                             f"words of {files[0].name} line {n}")
        bad = next((tag for tag in t if not _TAG.fullmatch(tag)), None)
        if bad is not None:
            raise ValueError(f"{files[1]}:{n}: field 'slots': expected O, B-TYPE or I-TYPE, "
                             f"got {bad!r}")
        if len(i) != 1:
            raise ValueError(f"{files[2]}:{n}: field 'intent': expected one intent label, "
                             f"got {intent[:60]!r}")
        words.append(w)
        tags.append(t)
        intents.append(i[0])
    return IntentSlotSplit(corpus, words, tags, intents, files[0].parent)


def tag_names(train: TaggedSplit | IntentSlotSplit) -> list[str]:
    """Tag vocabulary of a train split: "O", "UNK", then its tags sorted by (type, B/I)."""
    seen = {tag for sentence in train.tags for tag in sentence} - {"O"}
    return ["O", UNK, *sorted(seen, key=lambda tag: (tag[2:], tag[:2]))]


def intent_names(train: IntentSlotSplit) -> list[str]:
    """Intent vocabulary of a train split: "UNK", then its intents sorted."""
    return [UNK, *sorted(set(train.intents) - {UNK})]


def tag_ids(split: TaggedSplit | IntentSlotSplit, names: list[str]) -> list[list[int]]:
    """Each sentence's tags as ids in `names` (from tag_names); a tag not in it is "UNK"."""
    index = {name: i for i, name in enumerate(names)}
    unk = index[UNK]
    return [[index.get(tag, unk) for tag in sentence] for sentence in split.tags]


def intent_ids(split: IntentSlotSplit, names: list[str]) -> list[int]:
    """Each utterance's intent as an id in `names` (from intent_names); unknown ones are "UNK"."""
    index = {name: i for i, name in enumerate(names)}
    return [index.get(intent, index[UNK]) for intent in split.intents]
