"""read_tfds_text under tfds.testing.mock_data (no TensorFlow, no network)."""

import sys

import pytest

from llm_jax.data import read_tfds_text

tfds = pytest.importorskip("tensorflow_datasets")

# No metadata for these data sets ships with tfds, so mock from the builders' code.
MOCK = {"num_examples": 3, "policy": tfds.testing.MockPolicy.USE_CODE}


def _texts(name, split):
    source = tfds.data_source(name, split=split)
    return [source[i]["text"] for i in range(len(source))]


@pytest.mark.parametrize("name,separator", [("tiny_shakespeare", ""), ("lm1b", "\n")])
def test_mock_data(name, separator):
    with tfds.testing.mock_data(**MOCK):
        texts = _texts(name, "train")
        text = read_tfds_text(name, "train")
    assert len(texts) == 3 and all(texts)
    assert text == separator.join(texts)


def test_bytes_examples_are_decoded():
    examples = [{"text": "naïve line".encode()}, {"text": b"second"}]
    with tfds.testing.mock_data(as_data_source_fn=lambda *args, **kwargs: examples):
        assert read_tfds_text("lm1b", "test") == "naïve line\nsecond"
        with pytest.raises(KeyError, match="'sentence'.*'text'"):
            read_tfds_text("lm1b", "test", feature="sentence")


def test_missing_tfds_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install llm_jax\[tfds\]"):
        read_tfds_text("lm1b", "train")
