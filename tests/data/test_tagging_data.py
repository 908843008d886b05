import collections

import pytest

from llm_jax.data import MissingDataError
from llm_jax.data.tagging_data import (
    UNK,
    intent_ids,
    intent_names,
    iob1_to_iob2,
    read_conll2003,
    read_intent_slots,
    tag_ids,
    tag_names,
)
from tests.conftest import require_real_data

# The counts of /work/shared/data/README.md: documents, sentences, tokens, PER/LOC/ORG/MISC entities.
CONLL = {
    "train": (946, 14041, 203621, (6600, 7140, 6321, 3438)),
    "valid": (216, 3250, 51362, (1842, 1837, 1341, 922)),
    "test": (231, 3453, 46435, (1617, 1668, 1661, 702)),
}
# utterances, distinct intents, distinct slot tags (None: the README gives no number).
INTENTS = {
    ("atis", "train"): (4478, 21, 120),
    ("atis", "valid"): (500, 16, 96),
    ("atis", "test"): (893, 20, 101),
    ("snips", "train"): (13084, 7, 72),
    ("snips", "valid"): (700, 7, None),
    ("snips", "test"): (700, 7, None),
}


@pytest.fixture
def real(monkeypatch):
    """Skips unless the real data directory holds every file named; then points at it."""
    def need(*files):
        root = require_real_data(*files)
        monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
        return root
    return need


def _error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


@pytest.mark.parametrize("split", list(CONLL))
def test_conll2003_counts(real, split):
    root = real(f"conll2003/{split}.txt")
    docs, sentences, tokens, entities = CONLL[split]
    data = read_conll2003(split)
    assert data.path == root / "conll2003" / f"{split}.txt"
    assert (len(data), sum(map(len, data.tokens)), len(set(data.doc_ids))) == (sentences, tokens, docs)
    assert data.doc_ids == sorted(data.doc_ids) and data.doc_ids[-1] == docs - 1
    assert all(len(w) == len(t) for w, t in zip(data.tokens, data.tags))
    begins = collections.Counter(tag[2:] for sentence in data.tags for tag in sentence if tag[:2] == "B-")
    assert tuple(begins[kind] for kind in ("PER", "LOC", "ORG", "MISC")) == entities
    # This copy is IOB2 already: nothing is retagged, and no I- opens an entity.
    assert data.retagged == 0 and all(iob1_to_iob2(t) == t for t in data.tags)


def test_conll2003_first_sentence_and_tag_names(real):
    real("conll2003/train.txt")
    train = read_conll2003("train")
    assert train.tokens[0] == ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    assert train.tags[0] == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
    assert tag_names(train) == ["O", UNK, "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG",
                                "B-PER", "I-PER"]
    assert read_conll2003("dev").path.name == "valid.txt"


def test_conll2003_iob1_file_is_read_as_iob2(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text("-DOCSTART- -X- -O- O\n\n"
                    "U.N. NNP I-NP I-ORG\nofficial NN I-NP O\nEkeus NNP I-NP I-PER\nheads VBZ I-VP O\n\n"
                    "Peter NNP I-NP I-PER\nJohn NNP I-NP B-PER\nSmith NNP I-NP I-PER\nof IN I-PP O\n"
                    "New NNP I-NP I-LOC\nYork NNP I-NP I-LOC\nBank NNP I-NP I-ORG\n\n\n"
                    "-DOCSTART- -X- -O- O\n\nBonn NNP I-NP I-LOC\n", encoding="utf-8")
    data = read_conll2003("train", path=path)
    assert data.tags == [["B-ORG", "O", "B-PER", "O"],
                         ["B-PER", "B-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-ORG"],
                         ["B-LOC"]]
    assert data.retagged == 6 and data.doc_ids == [0, 0, 1] and data.tokens[2] == ["Bonn"]
    # No -DOCSTART- at all, CRLF endings: one document.
    path.write_bytes(b"A DT B-NP O\r\nB NN I-NP B-LOC\r\n\r\nC NN B-NP O\r\n")
    data = read_conll2003("test", path=path)
    assert data.tokens == [["A", "B"], ["C"]] and data.doc_ids == [0, 0] and data.retagged == 0


@pytest.mark.parametrize("text,line,field,words", [
    ("EU NNP B-NP B-ORG\nrejects VBZ O\n", 2, "columns",
     "expected 4 space-separated columns (word POS chunk NER), got 3"),
    ("EU NNP B-NP B-ORG\n\nrejects VBZ B-VP X-ORG\n", 3, "NER", "expected O, B-TYPE or I-TYPE, got 'X-ORG'"),
    ("EU NNP B-NP B-\n", 1, "NER", "got 'B-'"),
    ("-DOCSTART- -X- -X- O\n\n", 1, "columns", "no sentences in the file"),
])
def test_conll2003_malformed_lines(tmp_path, text, line, field, words):
    path = tmp_path / "mine.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as e:
        read_conll2003("train", path=path)
    message = _error(e)
    assert message.startswith(f"{path}:{line}: field '{field}': ") and words in message


def test_conll2003_missing_files(tmp_data_dir, tmp_path):
    with pytest.raises(MissingDataError) as e:
        read_conll2003("valid")
    assert str(tmp_data_dir / "conll2003" / "valid.txt") in str(e.value)
    assert "Expected layout: conll2003/{train,valid,test}.txt" in str(e.value)
    with pytest.raises(MissingDataError) as e:
        read_conll2003("train", path=tmp_path / "eng.train")
    assert f"{tmp_path / 'eng.train'}: no such file" in _error(e)
    with pytest.raises(ValueError) as e:
        read_conll2003("testb")
    assert "split 'testb': expected one of train, valid, test" in _error(e)


@pytest.mark.parametrize("corpus,split", list(INTENTS), ids=[f"{c}-{s}" for c, s in INTENTS])
def test_intent_slot_counts(real, corpus, split):
    root = real(*(f"{corpus}/{split}/{name}" for name in ("seq.in", "seq.out", "label")))
    utterances, intents, tags = INTENTS[corpus, split]
    data = read_intent_slots(corpus, split)
    assert (data.corpus, data.path) == (corpus, root / corpus / split)
    assert len(data) == len(data.tags) == len(data.intents) == utterances
    assert all(len(w) == len(t) > 0 for w, t in zip(data.words, data.tags))
    assert len(set(data.intents)) == intents
    if tags is not None:
        assert len({tag for sentence in data.tags for tag in sentence}) == tags


def _intent_files(corpus, splits=("train", "valid", "test")):
    return [f"{corpus}/{s}/{n}" for s in splits for n in ("seq.in", "seq.out", "label")]


def test_atis_vocabularies_map_unseen_labels_to_unk(real):
    real(*_intent_files("atis"))
    train = read_intent_slots("atis", "train")
    intents, tags = intent_names(train), tag_names(train)
    assert (len(intents), len(tags)) == (21 + 1, 120 + 1)  # the train labels ("O" among them), UNK
    assert intents[0] == UNK and intents[1:] == sorted(set(train.intents))
    assert tags[:2] == ["O", UNK] and tags[2:4] == ["B-aircraft_code", "B-airline_code"]
    assert tags.index("I-airline_name") == tags.index("B-airline_name") + 1  # B-X, I-X together
    assert UNK not in intent_ids(train, intents) and all(1 not in s for s in tag_ids(train, tags))
    # Intents and slots that only valid/test have become UNK, as JointBERT's data_loader makes them.
    test = read_intent_slots("atis", "test")
    ids = intent_ids(test, intents)
    unseen = {test.intents[i] for i, j in enumerate(ids) if j == 0}
    assert unseen == {"atis_airfare#atis_flight", "atis_day_name", "atis_flight#atis_airline",
                      "atis_flight_no#atis_airline"}
    assert ids.count(0) == 5
    test_tags = tag_ids(test, tags)
    assert sum(s.count(1) for s in test_tags) == 6
    assert test_tags[0] == [tags.index(t) for t in test.tags[0]]
    valid = read_intent_slots("atis", "dev")  # JointBERT's name for valid/
    assert valid.path.name == "valid" and intent_ids(valid, intents).count(0) == 1


def test_snips_vocabularies(real):
    real(*_intent_files("snips"))
    train = read_intent_slots("snips", "train")
    assert intent_names(train) == [UNK, "AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic",
                                   "RateBook", "SearchCreativeWork", "SearchScreeningEvent"]
    assert len(tag_names(train)) == 72 + 1
    test = read_intent_slots("snips", "test")
    assert 0 not in intent_ids(test, intent_names(train))
    # seq.in has doubled and trailing spaces; words are whitespace-separated, as JointBERT splits them.
    assert all(w and " " not in w for sentence in train.words for w in sentence)


def _write_split(folder, seq_in, seq_out, label):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("seq.in", seq_in), ("seq.out", seq_out), ("label", label)):
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_a_users_own_intent_folders(tmp_path):
    train = read_intent_slots("mine", "train", path=_write_split(
        tmp_path / "train", "play jazz\nbook a table  for two \n", "O B-genre\nO O O O B-count\n",
        "PlayMusic\nBookRestaurant\n"))
    assert train.words == [["play", "jazz"], ["book", "a", "table", "for", "two"]]
    assert train.corpus == "mine" and train.path == tmp_path / "train"
    test = read_intent_slots("mine", "test", path=_write_split(
        tmp_path / "test", "play bach\nweather in rome\n", "O B-artist\nO O B-city\n",
        "PlayMusic\nGetWeather\n"))
    intents, tags = intent_names(train), tag_names(train)
    assert intents == [UNK, "BookRestaurant", "PlayMusic"]
    assert tags == ["O", UNK, "B-count", "B-genre"]
    assert intent_ids(test, intents) == [2, 0] and tag_ids(test, tags) == [[0, 1], [0, 0, 1]]


@pytest.mark.parametrize("files,bad,line,field,words", [
    (("a b\nc\n", "O O\nO\n", "x\n"), "label", 2, "intent", "label has 1 lines but"),
    (("a b\n", "O O\nO\n", "x\n"), "seq.out", 2, "slots", "seq.out has 2 lines but"),
    (("a b\nc d e\n", "O O\nO O\n", "x\ny\n"), "seq.out", 2, "slots",
     "2 tags for the 3 words of seq.in line 2"),
    (("a b\n\n", "O O\n\n", "x\ny\n"), "seq.in", 2, "words", "empty line"),
    (("a b\n", "O slot\n", "x\n"), "seq.out", 1, "slots", "expected O, B-TYPE or I-TYPE, got 'slot'"),
    (("a b\n", "O O\n", "play music\n"), "label", 1, "intent", "expected one intent label, got 'play music'"),
    (("a b\n", "O O\n", "\n"), "label", 1, "intent", "expected one intent label, got ''"),
])
def test_malformed_intent_files_name_file_line_and_field(tmp_path, files, bad, line, field, words):
    folder = _write_split(tmp_path / "valid", *files)
    with pytest.raises(ValueError) as e:
        read_intent_slots("atis", "valid", path=folder)
    message = _error(e)
    assert message.startswith(f"{folder / bad}:{line}: field '{field}': ") and words in message


def test_missing_intent_files(tmp_data_dir, tmp_path):
    with pytest.raises(MissingDataError) as e:
        read_intent_slots("snips", "test")
    assert str(tmp_data_dir / "snips" / "test" / "seq.in") in str(e.value)
    assert "Expected layout: snips/{train,valid,test}/ each holding seq.in" in str(e.value)
    _write_split(tmp_path / "train", "a\n", "O\n", "x\n").joinpath("label").unlink()
    with pytest.raises(MissingDataError) as e:
        read_intent_slots("atis", "train", path=tmp_path / "train")
    assert f"{tmp_path / 'train' / 'label'}: no such file" in _error(e)
    with pytest.raises(ValueError) as e:
        read_intent_slots("multiwoz", "train")
    assert "intent corpus 'multiwoz': expected one of atis, snips" in _error(e)
