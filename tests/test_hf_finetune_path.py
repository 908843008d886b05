"""The published-checkpoint path end to end, offline: a small random Hugging Face
BertForPreTraining (as bert-base-uncased is stored) with a vocab.txt -> `import-hf` ->
`train` of configs/glue.py:hf,sst2 with init_from (the backbone's shape read from the
imported workdir's config.json) -> `predict` on a JSON-lines file."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from llm_jax.interop.hf_files import read_tensors  # noqa: E402
from llm_jax.training import commands  # noqa: E402
from llm_jax.training.experiment import Experiment, load_config  # noqa: E402
from llm_jax.training.init_from import read_source_params  # noqa: E402
from llm_jax.training.optimizer import path_str  # noqa: E402
from tests.conftest import load_config as load_glue_config  # noqa: E402
from tests.tasks.test_glue import WORDS, write_sst2  # noqa: E402

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# not bert-mini's shape, so a config that restated it would not load: 3 layers, 48 wide
SHAPE = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
             max_position_embeddings=40, type_vocab_size=2, pad_token_id=0)


def _flat(tree):
    import jax
    return {path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf_path")
    hf_dir = tmp / "hf"
    hf_dir.mkdir()
    vocab = SPECIALS + sorted(WORDS) + ["##s", "."]
    (hf_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    hf = transformers.BertForPreTraining(transformers.BertConfig(vocab_size=len(vocab), **SHAPE))
    hf.save_pretrained(hf_dir, safe_serialization=True)
    write_sst2(tmp / "train.tsv", 64, seed=1)
    write_sst2(tmp / "dev.tsv", 24, seed=2)

    record = commands.import_hf(str(hf_dir), str(tmp / "pre"))  # the CLI's import-hf
    assert record["format"] == "bert"
    run = tmp / "run"
    # what `python -m llm_jax train --config=configs/glue.py:hf,sst2 --config.init_from=PRE ...`
    # runs (in-process: a second interpreter would double the test's time)
    c = load_glue_config("glue", "hf,sst2")
    c.init_from = str(tmp / "pre")
    c.task.update(train_file=str(tmp / "train.tsv"), eval_file=str(tmp / "dev.tsv"))
    c.data.seq_len = 16
    c.train.update(epochs=0, steps=4, batch_size=8, eval_every=4, log_every=2, checkpoint_every=4,
                   progress_bar=False)
    commands.train(c, str(run))
    return tmp, hf_dir, run


def test_the_backbone_shape_comes_from_the_imported_workdir_and_every_tensor_loads(path):
    tmp, hf_dir, run = path
    config = load_config(str(run))
    b = config.model.backbone
    assert (b.num_layers, b.embed_dim, b.num_heads, b.mlp_dim, b.max_len) == (3, 48, 4, 64, 40)
    assert b.dropout_rate == 0.1 and config.optimizer.lr == 2e-5  # the fine-tuning config's
    report = json.loads((run / "init_from.json").read_text())
    assert report["mismatched"] == [] and report["prefix"] == "backbone"
    assert report["loaded"] and all(p.startswith("backbone/") for p in report["loaded"])
    assert [p for p in report["new"] if p.startswith("backbone/")] == []  # only the head is new
    assert all(p.startswith("head/") or not p.startswith("backbone/") for p in report["new"])


def test_the_fine_tuned_model_starts_from_the_hf_tensors(path, tmp_path):
    tmp, hf_dir, run = path
    config = load_config(str(run))  # the resolved config of the run, init_from included
    exp = Experiment(config, str(tmp_path / "step0"))
    state, _ = exp.initial_state()  # step 0: what training started from
    exp.checkpointer.close()
    got = _flat(state["params"]["backbone"])
    imported = _flat(read_source_params(str(tmp / "pre")))  # the mapping table's output
    assert set(got) <= set(imported) and len(got) > 10
    for name, value in got.items():
        np.testing.assert_array_equal(value, imported[name], err_msg=name)
    # and straight from the Hugging Face file
    tensors, _ = read_tensors(str(hf_dir))
    np.testing.assert_array_equal(got["embed/table"],
                                  tensors["bert.embeddings.word_embeddings.weight"])
    np.testing.assert_array_equal(got["pooler/kernel"], tensors["bert.pooler.dense.weight"].T)


def test_predict_writes_one_label_per_line(path):
    tmp, _, run = path
    lines = ["the film was great", {"sentence": "a dull plot"}, "it is awful and bad"]
    inp = tmp / "in.jsonl"
    inp.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    out = tmp / "out.jsonl"
    summary = commands.predict_file(str(run), str(inp), str(out), progress=False)  # `predict`
    assert summary["lines"] == len(lines)
    rows = [json.loads(r) for r in out.read_text().splitlines()]
    assert len(rows) == len(lines)
    assert all(r["label"] in ("negative", "positive") for r in rows)


def test_the_intent_slots_hf_variant_fine_tunes_the_imported_workdir_with_a_crf(path):
    """configs/intent_slots.py:hf (ner_conll2003.py and squad.py read init_from the same way)
    on the imported workdir: its shape, every backbone tensor loaded, the head and CRF new."""
    from tests.tasks.test_intent_slots import tiny as tiny_intent_slots

    tmp, _, _ = path
    c = load_glue_config("intent_slots", "hf,atis")
    assert c.init_from_model and c.init_from_prefix == "backbone" and c.optimizer.lr == 5e-5
    tiny = tiny_intent_slots(tmp / "atis")  # the tiny variant's data and label sizes
    c.task.update(train_dir=tiny.task.train_dir, eval_dir=tiny.task.eval_dir)
    c.model.update(num_labels=tiny.model.num_labels, num_intents=tiny.model.num_intents, crf=True)
    c.init_from = str(tmp / "pre")
    c.data.update(seq_len=16, test_split="")
    c.train.update(epochs=0, steps=4, batch_size=8, eval_every=4, log_every=2, checkpoint_every=4,
                   eval_batches=2, progress_bar=False)
    commands.train(c, str(tmp / "intent_run"))
    config = load_config(str(tmp / "intent_run"))
    assert (config.model.backbone.num_layers, config.model.backbone.embed_dim) == (3, 48)
    report = json.loads((tmp / "intent_run" / "init_from.json").read_text())
    assert report["mismatched"] == [] and report["loaded"]
    assert sorted({p.split("/")[0] for p in report["new"]}) == ["crf", "head"]
    for name in ("ner_conll2003", "squad"):
        hf = load_glue_config(name, "hf")
        assert hf.init_from_model and hf.init_from_prefix == "backbone"
