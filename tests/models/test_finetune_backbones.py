"""FineTuned's GPT and ELMo backbones: shapes and parameter paths, GPT's pooled state of the
last real token (padding-invariant), its auxiliary LM loss against NumPy, init_from_prefix
loading tiny pre-trained GPT and ELMo workdirs, the config schema reading the backbone's own
defaults, and a tiny GLUE run on each backbone."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.data.chars import batch_char_ids
from llm_jax.models import default_model_config, gpt
from llm_jax.models.finetune import GPT_SPECIALS, FineTuned
from llm_jax.tasks.finetune_inputs import truncate_longest_first
from llm_jax.tasks.glue import Glue, lm_loss_sums
from llm_jax.training.commands import train
from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import Experiment
from llm_jax.training.init_from import read_source_params
from llm_jax.training.optimizer import path_str
from tests.conftest import load_config
from tests.tasks.test_glue import WORDS, write_sst2, write_stsb

B, T, V = 2, 8, 20


def logsoftmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def flat(tree):
    return {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def gpt_model_config(**kw):
    c = default_model_config("finetune")
    c.backbone = gpt.default_config()
    c.backbone.update(num_layers=2, num_heads=2, embed_dim=16, max_len=16, vocab_size=0,
                      use_bias=False, activation="gelu")
    c.update(head="classification", num_labels=3, vocab_size=V, head_dropout=0.0, **kw)
    return c


def elmo_model_config(**kw):
    c = load_config("glue", "elmo_tiny").model
    c.update(num_labels=3, vocab_size=V, **kw)
    return c


def test_shapes_and_parameter_paths():
    ids = jnp.zeros((B, T), jnp.int32)
    mask = jnp.ones((B, T), bool)
    model = nnx.eval_shape(lambda: FineTuned(gpt_model_config(), rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    out = jax.eval_shape(lambda s: nnx.merge(graphdef, s)(ids, None, mask), state)
    assert {k: v.shape for k, v in out.items()} == {"logits": (B, 3), "lm_logits": (B, T, V)}
    paths = flat(nnx.to_pure_dict(state))
    assert paths["adapter/table"].shape == (len(GPT_SPECIALS), 16)
    assert paths["backbone/embed/table"].shape == (V, 16)  # the pre-trained shape: it loads
    assert {p.split("/")[0] for p in paths} == {"backbone", "adapter", "head"}

    cfg = elmo_model_config()
    model = nnx.eval_shape(lambda: FineTuned(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    chars = jnp.zeros((B, T, cfg.backbone.max_chars), jnp.int32)
    feats = jax.eval_shape(lambda s: nnx.merge(graphdef, s).features(chars, None, mask), state)
    assert feats["tokens"].shape == (B, T, 32) and feats["pooled"].shape == (B, 32)
    out = jax.eval_shape(lambda s: nnx.merge(graphdef, s)(chars, None, mask), state)
    assert out["logits"].shape == (B, 3)
    paths = flat(nnx.to_pure_dict(state))
    assert {p for p in paths if p.startswith("adapter/")} == {"adapter/mix/weights",
                                                              "adapter/mix/gamma"}
    assert not any("softmax" in p for p in paths)  # the biLM's softmax is pre-training's only


def test_gpt_pooled_is_the_last_real_token_and_padding_invariant():
    model = FineTuned(gpt_model_config(), rngs=nnx.Rngs(0))
    start, delim, extract = V, V + 1, V + 2
    row = [start, 3, 5, 7, delim, 2, 9, extract]  # 8 real tokens

    @nnx.jit
    def run(model, ids, mask):
        return model.features(ids, None, mask), model(ids, None, mask)

    def padded(length):
        ids = np.zeros((1, length), np.int32)
        ids[0, :len(row)] = row
        return jnp.asarray(ids), jnp.asarray(np.arange(length)[None] < len(row))

    (f8, o8), (f12, o12) = run(model, *padded(8)), run(model, *padded(12))
    np.testing.assert_allclose(f8["pooled"][0], f8["tokens"][0, len(row) - 1], rtol=1e-6)
    np.testing.assert_allclose(f12["pooled"], f8["pooled"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o12["logits"], o8["logits"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(o12["lm_logits"][:, :8], o8["lm_logits"], rtol=1e-5, atol=1e-5)
    # without added tokens the adapter's forward pass is GPT's own
    ids = jnp.asarray([[1, 4, 2, 8, 5]], jnp.int32)
    want = nnx.jit(lambda m, x: m.backbone(x))(model, ids)
    got = run(model, ids, jnp.ones_like(ids, bool))[1]["lm_logits"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_truncation_and_lm_loss_sums_against_numpy():
    assert truncate_longest_first(3, 4, 10) == (3, 4)
    assert truncate_longest_first(10, 3, 8) == (5, 3)
    assert truncate_longest_first(2, 9, 8) == (2, 6)
    assert truncate_longest_first(10, 10, 7) == (3, 4)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6, V)).astype(np.float32)
    ids = rng.integers(0, V, (3, 6)).astype(np.int32)
    ids[:, 0], ids[0, 4] = V, V + 2  # start, extract: never scored
    mask = np.arange(6)[None] < np.array([[5], [6], [3]])
    w = np.array([1.0, 1.0, 0.0], np.float32)  # row 2 is padding
    got_sum, got_n = lm_loss_sums(jnp.asarray(logits), jnp.asarray(ids), jnp.asarray(mask),
                                  jnp.asarray(w), V)
    logp = logsoftmax(logits)
    total, n = 0.0, 0
    for b in range(3):
        for t in range(5):
            if mask[b, t + 1] and ids[b, t + 1] < V and w[b] > 0:
                total -= logp[b, t, ids[b, t + 1]]
                n += 1
    assert n == 3 + 5 and float(got_n) == n
    np.testing.assert_allclose(float(got_sum), total, rtol=1e-5)


def corpus(root):
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("valid", 30)):
        lines = [" ".join(rng.choice(WORDS, rng.integers(4, 9))) for _ in range(n)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def pretrained_gpt(tmp_path_factory):
    """configs/gpt_shakespeare.py:tiny, 4 steps on a char corpus of the fine-tuning words."""
    root = corpus(tmp_path_factory.mktemp("gpt_pre"))
    c = load_config("gpt_shakespeare", "tiny")
    c.data.corpus = str(root)
    c.train.update(steps=4, eval_every=4, eval_batches=1, checkpoint_every=4, progress_bar=False)
    train(c, str(root / "run"))
    return root / "run"


@pytest.fixture(scope="module")
def pretrained_elmo(tmp_path_factory):
    """configs/elmo.py:tiny, 4 steps on a word corpus of the fine-tuning words."""
    root = corpus(tmp_path_factory.mktemp("elmo_pre"))
    c = load_config("elmo", "tiny")
    c.data.update(corpus=str(root), min_count=1)
    c.task.softmax = "full"
    c.train.update(steps=4, eval_every=4, eval_batches=1, checkpoint_every=4)
    train(c, str(root / "run"))
    return root / "run"


def glue_config(variant, pretrained, tmp_path, task="sst2", steps=20):
    write = write_stsb if task == "stsb" else write_sst2
    write(tmp_path / "train.tsv", 64, seed=1)
    write(tmp_path / "dev.tsv", 16, seed=2)
    c = load_config("glue", f"{variant},{task}")
    c.update(init_from=str(pretrained), init_from_prefix="backbone")
    c.task.update(train_file=str(tmp_path / "train.tsv"), eval_file=str(tmp_path / "dev.tsv"))
    c.train.update(steps=steps, eval_every=steps, checkpoint_every=steps)
    return c


def test_config_schema_reads_the_backbones_own_defaults():
    for variant in ("gpt_tiny", "elmo_tiny", "gpt", "elmo"):
        c = load_config("glue", variant)
        if c.init_from_prefix:
            c.init_from = "somewhere"
        check_config(c)  # gpt's / elmo's fields are not unknown
        with c.unlocked():
            c.model.backbone.type_vocab_size = 2  # bert's field, not this family's
        with pytest.raises(ValueError, match="unknown config field model.backbone.type_vocab_size"):
            check_config(c)
    cfg = gpt_model_config()
    cfg.backbone.type_vocab_size = 2
    with pytest.raises(ValueError, match=r"model.backbone.name='gpt': model.backbone.type_vocab_size"):
        FineTuned(cfg, rngs=nnx.Rngs(0))
    cfg = gpt_model_config(freeze_backbone=True)
    with pytest.raises(ValueError, match="model.freeze_backbone=True is not supported"):
        FineTuned(cfg, rngs=nnx.Rngs(0))


def test_gpt_init_from_loads_every_backbone_tensor_and_the_aux_loss(pretrained_gpt, tmp_path):
    c = glue_config("gpt_tiny", pretrained_gpt, tmp_path)
    exp = Experiment(c, str(tmp_path / "fresh"))
    state, _ = exp.initial_state()
    params, source = flat(state["params"]), flat(read_source_params(pretrained_gpt))
    report = json.loads((tmp_path / "fresh" / "init_from.json").read_text())
    backbone = sorted(p for p in params if p.startswith("backbone/"))
    assert sorted(report["loaded"]) == backbone and len(backbone) == len(source)
    assert report["mismatched"] == [] and report["left_out"] == []
    assert report["new"] == ["adapter/table", "head/out/dense/bias", "head/out/dense/kernel"]
    for p in backbone:
        np.testing.assert_array_equal(np.asarray(params[p]), source[p[len("backbone/"):]])
    # the input layout: start + A + extract, ids after the char vocabulary
    task = exp.task
    V0 = task.tokenizer.vocab_size
    assert task.special_base == V0 == params["backbone/embed/table"].shape[0]
    row, n = task.train.input_ids[0], task.train.lengths[0]
    assert row[0] == V0 and row[n - 1] == V0 + 2 and (row[1:n - 1] < V0).all()
    assert task.tokenizer.decode(row[1:n - 1]) == open(c.task.train_file).read().split("\n")[1] \
        .split("\t")[0]
    # the loss: cross-entropy + 0.5 x the LM loss over the real text tokens, against NumPy
    graphdef, abstract = nnx.split(FineTuned(exp.config.model, rngs=nnx.Rngs(0)))
    nnx.replace_by_pure_dict(abstract, jax.tree.map(jnp.asarray, nnx.to_pure_dict(
        state["params"]) if isinstance(state["params"], nnx.State) else state["params"]))
    model = nnx.merge(graphdef, abstract)
    batch = {k: jnp.asarray(v) for k, v in task.train_batches(8, 0).batch(0).items()}
    loss, metrics = nnx.jit(lambda m, b: task.loss(m, b))(model, batch)
    out = nnx.jit(lambda m, b: m(b["input_ids"], None, b["mask"]))(model, batch)
    logits, lm = out["logits"], out["lm_logits"]
    y, ids, mask = np.asarray(batch["labels"]), np.asarray(batch["input_ids"]), np.asarray(batch["mask"])
    cls = -logsoftmax(logits)[np.arange(8), y].mean()
    lp = logsoftmax(lm)
    scored = [(b, t) for b in range(8) for t in range(ids.shape[1] - 1)
              if mask[b, t + 1] and ids[b, t + 1] < V0]
    lm_mean = -np.mean([lp[b, t, ids[b, t + 1]] for b, t in scored])
    assert c.task.lm_loss_weight == 0.5
    np.testing.assert_allclose(float(loss), cls + 0.5 * lm_mean, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["lm_loss"][0] / metrics["lm_loss"][1]), lm_mean,
                               rtol=1e-5)
    assert float(metrics["lm_loss"][1]) == len(scored)


def test_gpt_glue_train_end_to_end(pretrained_gpt, tmp_path):
    c = glue_config("gpt_tiny", pretrained_gpt, tmp_path)
    summary = train(c, str(tmp_path / "run"))
    assert np.isfinite(summary["eval/glue_score"]) and np.isfinite(summary["eval/lm_loss"])
    # pairs: start + A + delimiter + B + extract
    c = glue_config("gpt_tiny", pretrained_gpt, tmp_path, task="stsb")
    task = Glue(c, str(tmp_path / "pairs"))
    V0 = task.tokenizer.vocab_size
    row, n = task.valid.input_ids[0], task.valid.lengths[0]
    assert row[0] == V0 and row[n - 1] == V0 + 2 and (row == V0 + 1).sum() == 1


def test_elmo_glue_train_end_to_end(pretrained_elmo, tmp_path):
    c = glue_config("elmo_tiny", pretrained_elmo, tmp_path)
    summary = train(c, str(tmp_path / "run"))
    assert np.isfinite(summary["eval/glue_score"])
    report = json.loads((tmp_path / "run" / "init_from.json").read_text())
    assert sorted(report["new"]) == ["adapter/mix/gamma", "adapter/mix/weights",
                                     "head/out/dense/bias", "head/out/dense/kernel"]
    assert {p.split("/")[0] for p in report["left_out"]} == {"softmax_kernel", "softmax_bias"}
    source = flat(read_source_params(pretrained_elmo))
    after = flat(read_source_params(tmp_path / "run"))
    assert report["loaded"] and all(p.startswith("backbone/") for p in report["loaded"])
    for p in report["loaded"]:  # frozen: the biLM is exactly the pre-trained one
        np.testing.assert_array_equal(after[p], source[p[len("backbone/"):]])
    assert not np.allclose(after["adapter/mix/weights"], 0.0)  # the mix trained
    # the inputs: char ids of whitespace words, as the biLM reads them
    task = Glue(c, str(tmp_path / "run"))
    batch = task.valid.rows(np.arange(2))
    words = [open(c.task.eval_file).read().split("\n")[i + 1].split("\t")[0].split()
             for i in range(2)]
    chars, mask = batch_char_ids(words, c.model.backbone.max_chars, min_len=c.data.seq_len)
    np.testing.assert_array_equal(batch["input_ids"], chars)
    np.testing.assert_array_equal(batch["mask"], mask)
    # freeze_backbone without a frozen optimizer group is a one-line error
    c.optimizer.param_groups = ()
    with pytest.raises(ValueError, match="config.model.freeze_backbone=True: also set"):
        Glue(c, str(tmp_path / "other"))
