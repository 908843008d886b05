"""experiments/gpt2_zeroshot/detokenized_corpus.py: WikiText-2's splits through the harness's
detokeniser, as a corpus directory the trainer reads."""

import importlib.util

from llm_jax.data.corpora import read_corpus
from tests.conftest import REPO


def _script():
    path = REPO / "experiments" / "gpt2_zeroshot" / "detokenized_corpus.py"
    spec = importlib.util.spec_from_file_location("detokenized_corpus", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_writes_each_split_detokenised(tmp_path, monkeypatch):
    data = tmp_path / "data" / "wikitext-2"
    data.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (data / f"wiki.{split}.tokens").write_text(
            f" = {split} = \n a well @-@ known fact , 1 @,@ 000 ( or so ) . \n")
    monkeypatch.setenv("LLM_JAX_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "corpus"
    _script().main([f"--out={out}"])
    assert sorted(p.name for p in out.iterdir()) == ["test.txt", "train.txt", "valid.txt"]
    assert (out / "valid.txt").read_text() == " = valid =\na well-known fact, 1,000 (or so).\n"
    # the directory is a corpus the trainer's reader takes by path
    assert read_corpus(str(out), "train").startswith(" = train =\na well-known")
