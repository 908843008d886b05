"""read_parallel (Multi30k, SAMSum, a user's directory) and read_tfds_parallel (mocked TFDS)."""

import gzip
import json

import pytest

from llm_jax.data import CorpusDecodeError, MissingDataError, read_parallel, read_tfds_parallel
from llm_jax.data.parallel_text import parallel_files, read_lines

MULTI30K_FILES = [f"multi30k/{stem}.{lang}.gz" for stem in ("train", "val", "test_2016_flickr")
                  for lang in ("de", "en")]
# (count, first German line, first English line), from /work/shared/data/README.md and the files.
MULTI30K = {
    "train": (29000, "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
              "Two young, White males are outside near many bushes."),
    "valid": (1014, "Eine Gruppe von Männern lädt Baumwolle auf einen Lastwagen",
              "A group of men are loading cotton onto a truck"),
    "test": (1000, "Ein Mann mit einem orangefarbenen Hut, der etwas anstarrt.",
             "A man in an orange hat starring at something."),
}


@pytest.mark.real_data(*MULTI30K_FILES)
@pytest.mark.parametrize("split", sorted(MULTI30K))
def test_multi30k_counts_and_first_lines(real_data_dir, split):
    count, first_de, first_en = MULTI30K[split]
    de, en = read_parallel("multi30k", split, "de", "en")
    assert len(de) == len(en) == count
    assert (de[0], en[0]) == (first_de, first_en)
    assert all(de) and all(en)  # this release has no empty line
    # Reversed direction: the same pairs, sides swapped.
    assert read_parallel("multi30k", split, "en", "de") == (en, de)


@pytest.mark.real_data(*MULTI30K_FILES)
def test_multi30k_split_aliases(real_data_dir):
    assert read_parallel("multi30k", "val", "de", "en") == read_parallel(
        "multi30k", "valid", "de", "en")
    src, _ = parallel_files("multi30k", "test_2016_flickr", "de", "en")
    assert src == real_data_dir / "multi30k" / "test_2016_flickr.de.gz"
    with pytest.raises(ValueError, match=r"'dev'.*'multi30k'"):
        read_parallel("multi30k", "dev", "de", "en")


def test_multi30k_missing_file_names_it(tmp_data_dir):
    with pytest.raises(MissingDataError, match=r"multi30k/train\.de\.gz"):
        read_parallel("multi30k", "train", "de", "en")


@pytest.mark.real_data("samsum/train.json", "samsum/val.json", "samsum/test.json")
def test_samsum(real_data_dir):
    counts = {"train": 14732, "valid": 818, "test": 819}
    for split, count in counts.items():
        src, tgt = read_parallel("samsum", split, "ignored", "ignored")
        assert len(src) == len(tgt) == count
        assert not any("\r\n" in s for s in src)  # turn separators made uniform
    src, tgt = read_parallel("samsum", "train", "de", "en")
    assert src[0].startswith("Amanda: I baked  cookies. Do you want some?\nJerry: Sure!\n")
    assert tgt[0] == "Amanda baked cookies and will bring Jerry some tomorrow."
    assert src.count("") == 1  # the release's one empty dialogue is kept


def test_samsum_bad_record(tmp_data_dir):
    (tmp_data_dir / "samsum").mkdir()
    (tmp_data_dir / "samsum" / "test.json").write_text(json.dumps([{"id": "1", "dialogue": "x"}]))
    with pytest.raises(ValueError, match=r"test\.json: record 0 has no text field 'summary'"):
        read_parallel("samsum", "test", "", "")


def _write(path, lines, *, gz=False, encoding="utf-8", end="\n"):
    data = "".join(line + end for line in lines).encode(encoding)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def test_directory_plain_and_gz(tmp_path):
    _write(tmp_path / "train.de", ["Hallo Welt", "", "Zwei\u2028Zeilen?"])
    _write(tmp_path / "train.en.gz", ["Hello world", "", "Two\u2028lines?"], gz=True)
    src, tgt = read_parallel(str(tmp_path), "train", "de", "en")
    # Empty lines kept, U+2028 is not a line break here.
    assert src == ["Hallo Welt", "", "Zwei\u2028Zeilen?"]
    assert tgt == ["Hello world", "", "Two\u2028lines?"]


@pytest.mark.parametrize("stem", ["valid", "val", "dev"])
def test_directory_valid_names(tmp_path, stem):
    _write(tmp_path / f"{stem}.de", ["a"], end="\r\n")  # Windows line ends read the same
    _write(tmp_path / f"{stem}.en", ["b"])
    assert read_parallel(str(tmp_path), "valid", "de", "en") == (["a"], ["b"])


def test_directory_missing_file_names_paths_tried(tmp_path):
    _write(tmp_path / "train.de", ["a"])
    with pytest.raises(FileNotFoundError, match=r"train\.en or .*train\.en\.gz"):
        read_parallel(str(tmp_path), "train", "de", "en")
    with pytest.raises(FileNotFoundError, match=r"valid\.de or .*val\.de or .*dev\.de\.gz"):
        read_parallel(str(tmp_path), "valid", "de", "en")
    with pytest.raises(ValueError, match="neither a built-in parallel corpus"):
        read_parallel(str(tmp_path / "nope"), "train", "de", "en")


def test_directory_line_count_mismatch(tmp_path):
    _write(tmp_path / "test.de", ["a", "b", "c"])
    _write(tmp_path / "test.en.gz", ["a", "b"], gz=True)
    with pytest.raises(ValueError, match=r"test\.de has 3 lines but .*test\.en\.gz has 2"):
        read_parallel(str(tmp_path), "test", "de", "en")


def test_directory_encoding(tmp_path):
    _write(tmp_path / "train.de", ["Grüße", "Straße"], encoding="latin-1")
    _write(tmp_path / "train.en", ["greetings", "street"])
    with pytest.raises(CorpusDecodeError, match=r"train\.de line 1: byte 0xfc is not valid "
                                                r"utf-8; set config\.data\.encoding"):
        read_parallel(str(tmp_path), "train", "de", "en")
    src, _ = read_parallel(str(tmp_path), "train", "de", "en", encoding="latin-1")
    assert src == ["Grüße", "Straße"]
    with pytest.raises(ValueError, match=r"config\.data\.encoding='klingon'"):
        read_parallel(str(tmp_path), "train", "de", "en", encoding="klingon")


def test_read_lines_edge_cases(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "noend").write_bytes(b"a\n\nb")
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    assert read_lines(tmp_path / "empty") == []
    assert read_lines(tmp_path / "noend") == ["a", "", "b"]
    with pytest.raises(ValueError, match=r"bad\.gz: not a complete gzip file"):
        read_lines(tmp_path / "bad.gz")


@pytest.fixture
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def test_tfds_builder_code_under_mock_data(tfds):
    # wmt14_translate's builder module imports TensorFlow, so the real-code mock uses another
    # Translation-feature data set; wmt14's layout is checked below.
    mock = {"num_examples": 3, "policy": tfds.testing.MockPolicy.USE_CODE}
    name = "ted_hrlr_translate/pt_to_en"
    with tfds.testing.mock_data(**mock):
        source = tfds.data_source(name, split="validation")
        examples = [source[i] for i in range(len(source))]
        src, tgt = read_tfds_parallel(name, "validation", "pt", "en")
    assert len(src) == len(tgt) == 3
    assert src == [e["pt"] for e in examples] and tgt == [e["en"] for e in examples]


def test_tfds_wmt14_layout(tfds, monkeypatch):
    # mock_data still builds the data set's builder, and wmt14's needs TensorFlow; so
    # tfds.data_source itself is replaced, with examples in wmt14's layout (bytes per language).
    examples = [{"de": "Grüß Gott".encode(), "en": b"Hello"}, {"de": b"", "en": b""}]
    seen = []

    def data_source(name, split, data_dir=None):
        seen.append((name, split, data_dir))
        return examples

    monkeypatch.setattr(tfds, "data_source", data_source)
    assert read_tfds_parallel("wmt14_translate/de-en", "test", "de", "en") == (
        ["Grüß Gott", ""], ["Hello", ""])
    assert seen == [("wmt14_translate/de-en", "test", None)]
    with pytest.raises(KeyError, match=r"'fr' is not in .*\['de', 'en'\]"):
        read_tfds_parallel("wmt14_translate/de-en", "test", "de", "fr")
