"""FineTuned: a BERT-family backbone with each head, its parameter paths, the config schema,
and init_from_prefix loading a real pre-trained tiny BERT workdir into "backbone/"."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.data.token_cache import tokenizer_fingerprint
from llm_jax.data.tokenizers import load_tokenizer
from llm_jax.models import bert, build_model, default_model_config
from llm_jax.models.finetune import BERT_PRETRAINING_HEADS, FineTuned
from llm_jax.tasks.finetune_inputs import pretrained_tokenizer_dir
from llm_jax.tasks.glue import Glue
from llm_jax.training.commands import train
from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import Experiment
from llm_jax.training.init_from import load_matching, read_source_params
from llm_jax.training.optimizer import path_str
from tests.conftest import load_config
from tests.tasks.test_glue import WORDS, write_sst2

B, T, V = 2, 7, 40


def flat(tree):
    return {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def model_config(head="classification", **backbone):
    c = default_model_config("finetune")
    c.backbone.update(num_layers=2, embed_dim=16, num_heads=2, mlp_dim=32, max_len=16,
                      vocab_size=0, **backbone)
    c.update(head=head, num_labels=3, num_intents=5, vocab_size=V)
    return c


def inputs():
    ids = jax.random.randint(jax.random.key(0), (B, T), 0, V)
    seg = jnp.zeros((B, T), jnp.int32).at[:, 4:].set(1)
    mask = jnp.ones((B, T), bool).at[1, 5:].set(False)
    return ids, seg, mask


def test_every_head_shapes_and_dtypes():
    want = {"classification": {"logits": (B, 3)}, "token": {"logits": (B, T, 3)},
            "span": {"start_logits": (B, T), "end_logits": (B, T)},
            "intent_slot": {"intent_logits": (B, 5), "slot_logits": (B, T, 3)}}
    for head, shapes in want.items():  # abstractly: shapes and dtypes without running XLA
        cfg = model_config(head, dtype="bfloat16")
        model = nnx.eval_shape(lambda: build_model(cfg, rngs=nnx.Rngs(0)))  # noqa: B023
        assert isinstance(model, FineTuned)
        graphdef, state = nnx.split(model)
        for key in (None, jax.random.key(1)):
            out = jax.eval_shape(lambda s, k: nnx.merge(graphdef, s)(*inputs(), dropout_key=k),  # noqa: B023
                                 state, key)
            assert {k: v.shape for k, v in out.items()} == shapes, head
            assert all(v.dtype == jnp.float32 for v in out.values()), head


def test_backbone_paths_are_berts_without_its_pretraining_heads():
    cfg = model_config()
    b = cfg.backbone.copy_and_resolve_references()
    b.vocab_size = V

    def paths(build):
        return flat(nnx.to_pure_dict(nnx.state(nnx.eval_shape(build))))
    ours = paths(lambda: FineTuned(cfg, rngs=nnx.Rngs(0)))
    theirs = paths(lambda: bert.Bert(b, rngs=nnx.Rngs(0)))
    dropped = {p for p in theirs if p.split("/")[0] in BERT_PRETRAINING_HEADS}
    assert dropped and {"mlm_bias", "sentence/kernel"} <= dropped
    assert {p for p in ours if p.startswith("backbone/")} == {f"backbone/{p}" for p in
                                                             set(theirs) - dropped}
    assert {p for p in ours if not p.startswith("backbone/")} == {"head/out/dense/kernel",
                                                                 "head/out/dense/bias"}
    assert ours["backbone/embed/table"].shape == (V, 16)  # model.vocab_size filled it


def test_pooled_is_the_pooler_or_the_cls_state():
    ids, seg, mask = inputs()
    for pooler in (True, False):  # False: RoBERTa, no pooler and no sentence head
        model = FineTuned(model_config(pooler=pooler, sentence_head="nsp" if pooler else ""),
                          rngs=nnx.Rngs(0))
        @nnx.jit
        def run(model):
            h = model.backbone.encode(ids, seg, mask)
            return model.features(ids, seg, mask), h, model.backbone.pool(h) if pooler else h[:, 0]  # noqa: B023

        feats, h, want = run(model)
        np.testing.assert_allclose(feats["tokens"], h, rtol=1e-6)
        np.testing.assert_allclose(feats["pooled"], want, rtol=1e-6)


def test_bad_model_configs_name_the_field():
    for field, value, match in (("head", "qa", "model.head='qa'"),
                                ("num_labels", 0, "model.num_labels=0")):
        c = model_config()
        c[field] = value
        with pytest.raises(ValueError, match=match):
            FineTuned(c, rngs=nnx.Rngs(0))
    c = model_config("intent_slot")
    c.num_intents = 0
    with pytest.raises(ValueError, match="model.num_intents=0"):
        FineTuned(c, rngs=nnx.Rngs(0))
    c = model_config()
    c.backbone.name = "gpt"
    with pytest.raises(ValueError, match="model.backbone.name='gpt'"):
        FineTuned(c, rngs=nnx.Rngs(0))
    c = model_config()
    c.backbone.vocab_size = 10
    with pytest.raises(ValueError, match="model.backbone.vocab_size=10 is smaller"):
        FineTuned(c, rngs=nnx.Rngs(0))
    config = load_config("glue", "tiny")
    with config.unlocked():
        config.model.backbone.unknown_field = 1
    with pytest.raises(ValueError, match="unknown config field model.backbone.unknown_field"):
        check_config(config)
    config = load_config("glue", "bert_mini")  # init_from_prefix set, init_from not given
    with pytest.raises(ValueError, match="config.init_from_prefix='backbone' without "
                                         "config.init_from"):
        check_config(config)


def test_load_matching_with_a_prefix():
    target = {"backbone": {"embed": np.zeros(3), "ln": np.zeros(2)}, "head": np.zeros(4)}
    source = {"embed": np.ones(3), "ln": np.ones(5), "mlm_bias": np.ones(7)}
    params, report = load_matching(target, source, prefix="/backbone/")
    assert report == {"loaded": ["backbone/embed"], "new": ["backbone/ln", "head"],
                      "left_out": ["mlm_bias"], "mismatched": [("backbone/ln", (5,), (2,))]}
    np.testing.assert_array_equal(params["backbone"]["embed"], 1.0)
    _, plain = load_matching(target, source)  # no prefix: nothing lines up
    assert plain["loaded"] == []


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny BERT (configs/bert_wikitext2.py:tiny) pre-trained for 4 steps on a small corpus
    of the fine-tuning words, with a WordPiece vocabulary fitted on it."""
    root = tmp_path_factory.mktemp("pretrain")
    rng = np.random.default_rng(0)
    for split, docs in (("train", 30), ("valid", 6)):
        lines = []
        for _ in range(docs):
            lines += [" ".join(rng.choice(WORDS, rng.integers(4, 9))) for _ in range(6)] + [""]
        (root / f"{split}.txt").write_text("\n".join(lines), encoding="utf-8")
    c = load_config("bert_wikitext2", "tiny")
    c.data.update(corpus=str(root), vocab_file="fit", vocab_size=200)
    c.task.update(text_format="lines", dupe_factor=1)
    c.train.update(steps=4, eval_every=4, eval_batches=1, checkpoint_every=4)
    train(c, str(root / "run"))
    return root / "run"


def finetune_config(pretrained, data):
    c = load_config("glue", "tiny")
    c.update(init_from=str(pretrained), init_from_prefix="backbone")
    c.task.update(train_file=str(data / "train.tsv"), eval_file=str(data / "dev.tsv"))
    c.train.update(steps=3, eval_every=3, checkpoint_every=3)
    return c


def test_init_from_prefix_loads_every_backbone_tensor(pretrained, tmp_path, capsys):
    write_sst2(tmp_path / "train.tsv", 40, seed=1)
    write_sst2(tmp_path / "dev.tsv", 16, seed=2)
    c = finetune_config(pretrained, tmp_path)
    source = flat(read_source_params(pretrained))
    exp = Experiment(c, str(tmp_path / "fresh"))
    state, _ = exp.initial_state()
    params = flat(state["params"])
    report = json.loads((tmp_path / "fresh" / "init_from.json").read_text())
    backbone = sorted(p for p in params if p.startswith("backbone/"))
    assert report["prefix"] == "backbone" and report["mismatched"] == []
    assert sorted(report["loaded"]) == backbone and len(backbone) == len(source) - len(
        report["left_out"])
    assert report["new"] == ["head/out/dense/bias", "head/out/dense/kernel"]
    assert {p.split("/")[0] for p in report["left_out"]} == {"mlm_dense", "mlm_ln", "mlm_bias",
                                                             "sentence"}
    for p in backbone:
        np.testing.assert_array_equal(np.asarray(params[p]), source[p[len("backbone/"):]])
    assert "into backbone/" in capsys.readouterr().out
    # the fine-tuning run reads the ids the backbone learnt: the pre-trained run's vocabulary
    fine = load_tokenizer(tmp_path / "fresh" / "tokenizer")
    assert tokenizer_fingerprint(fine) == tokenizer_fingerprint(
        load_tokenizer(pretrained / "tokenizer"))
    summary = train(c, str(tmp_path / "run"))  # and the trainer takes the same path
    assert np.isfinite(summary["eval/loss"]) and "eval/glue_accuracy" in summary
    assert json.loads((tmp_path / "run" / "init_from.json").read_text())["loaded"] == report[
        "loaded"]


def test_another_vocabulary_than_the_pretrained_one_is_an_error(pretrained, tmp_path):
    write_sst2(tmp_path / "train.tsv", 40, seed=1)
    write_sst2(tmp_path / "dev.tsv", 16, seed=2)
    c = finetune_config(pretrained, tmp_path)
    for path in (pretrained, pretrained / "checkpoints", pretrained / "checkpoints" / "4"):
        assert pretrained_tokenizer_dir(path) == str(pretrained / "tokenizer")
    c.data.update(vocab_file="fit", vocab_size=120)
    with pytest.raises(ValueError, match="config.data.vocab_file='fit' gives another vocabulary"):
        Glue(c, str(tmp_path / "w"))
