"""The biLM task: batch alignment, sampled softmax, and training/resume/eval/export end to end."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from llm_jax.data import WordTokenizer
from llm_jax.data.chars import word_char_ids
from llm_jax.tasks.bilm import WordTypes, log_uniform_sample, sampled_softmax_nll
from tests.conftest import load_config


def test_batch_targets_are_the_next_and_previous_words():
    vocab = WordTokenizer.fit("a b c a b c d\n", min_count=2)  # d is rare: an <unk> target
    types = WordTypes(vocab, max_chars=6)
    ids = types.encode("a b c d a zebra")  # zebra was never seen: a new type, not an error
    batch = types.to_batch(ids[None])
    words = vocab.words
    assert [words[i] for i in batch["fwd_targets"][0]] == ["c", "<unk>", "a", "<unk>"]
    assert [words[i] for i in batch["bwd_targets"][0]] == ["a", "b", "c", "<unk>"]
    # the inputs keep the rare word's own characters although its target is <unk>
    np.testing.assert_array_equal(batch["chars"][0, 2], word_char_ids("d", 6))
    np.testing.assert_array_equal(batch["chars"][0, 3], word_char_ids("a", 6))
    assert types.encode("").shape == (0,)


def test_sampled_softmax_matches_its_formula():
    key, V, K = jax.random.key(0), 50, 7
    h = jax.random.normal(jax.random.key(1), (4, 3))
    W = jax.random.normal(jax.random.key(2), (3, V))
    b = jax.random.normal(jax.random.key(3), (V,))
    targets = jnp.array([0, 5, 49, 1])
    got = np.asarray(sampled_softmax_nll(h, targets, W, b, key, K))
    ids = np.asarray(log_uniform_sample(key, K, V))
    assert ids.min() >= 0 and ids.max() < V
    q = lambda i: np.log((i + 2) / (i + 1)) / np.log(V + 1)  # noqa: E731
    logits = np.asarray(h @ W + b)
    for n, t in enumerate(np.asarray(targets)):
        row = [logits[n, t] - np.log(K * q(t))]
        row += [logits[n, s] - np.log(K * q(s)) for s in ids if s != t]  # hits removed
        row = np.array(row)
        expected = np.log(np.exp(row - row.max()).sum()) + row.max() - row[0]
        np.testing.assert_allclose(got[n], expected, rtol=1e-5)


def _tiny_corpus(root):
    """train/valid/test.txt of a few KB: sentences drawn from 24 words, seeded."""
    rng = np.random.default_rng(0)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "tu") for b in ("n", "s", "ra", "p", "xe", "d")]
    root.mkdir()
    for name, n in (("train.txt", 120), ("valid.txt", 12), ("test.txt", 12)):
        lines = [" ".join(rng.choice(words, rng.integers(4, 10))) for _ in range(n)]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def _fast(corpus):
    c = load_config("elmo", "tiny")
    c.data.update(corpus=str(corpus), min_count=2, seq_len=6)
    c.task.num_sampled = 8
    c.train.update(steps=4, batch_size=2, eval_every=2, eval_batches=1, checkpoint_every=2,
                   log_every=1, progress_bar=False)
    return c


def _flat_params(tree):
    """{"[forward_cells][0][w_in]": array}: list indices saved as ints or strings read alike."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p).replace("'", ""): np.asarray(v) for p, v in leaves}


def test_train_resume_export_on_a_tiny_corpus(tmp_path, capsys):
    """Train, resume, evaluate and export in seconds (it replaces a slow-marked copy on the
    first lines of WikiText-2 that CI never ran): 4 steps (checkpoints at 2 and 4), a
    resume from step 2 that reproduces steps 3-4 exactly, and an export whose files hold the
    checkpoint's parameters, the run's vocabulary and config, and give the trained LM's layers."""
    from llm_jax.data.chars import PAD, batch_char_ids
    from llm_jax.models.elmo import load_bilm
    from llm_jax.training.commands import evaluate_workdir, export_model, load
    from llm_jax.training.experiment import load_config as load_run_config
    from llm_jax.training.init_from import read_source_params
    from llm_jax.training.metrics import read_metrics
    from llm_jax.training.trainer import train

    corpus = _tiny_corpus(tmp_path / "corpus")
    ref, run = tmp_path / "ref", tmp_path / "run"
    summary = train(_fast(corpus), str(ref))
    np.testing.assert_allclose(summary["eval/loss"],
                               (summary["eval/forward_loss"] + summary["eval/backward_loss"]) / 2,
                               rtol=1e-5)
    # Resume: a copy of the finished run without its last checkpoint trains steps 3 and 4 again.
    shutil.copytree(ref, run)
    shutil.rmtree(run / "checkpoints" / "4")
    capsys.readouterr()
    train(_fast(corpus), str(run))
    assert f"resumed from {run / 'checkpoints'}/2" in capsys.readouterr().out
    a = {r["step"]: r for r in read_metrics(ref / "metrics.jsonl")}
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # steps continue; none is logged twice
    b = {r["step"]: r for r in rows}
    assert {1, 2, 3, 4} <= a.keys() and a[1]["train/loss"] != a[3]["train/loss"]
    # steps 1-2 were not recomputed (their rows, timings included, are the copied ones); 3-4 were,
    # from the restored parameters, optimizer and data state, to the same losses
    assert b[1] == a[1] and b[2] == a[2] and "train/tokens_per_sec" in a[2]
    for step in (3, 4):
        assert a[step]["train/loss"] == b[step]["train/loss"], step
    assert a[4]["eval/loss"] == b[4]["eval/loss"]
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [2, 4]
    # the restored parameters (and optimizer and data state) lead to the same final parameters
    params_ref = _flat_params(read_source_params(str(ref)))
    params_run = _flat_params(read_source_params(str(run)))
    params_2 = _flat_params(read_source_params(str(ref / "checkpoints" / "2")))
    assert params_run.keys() == params_ref.keys() and len(params_run) > 10
    for k in params_ref:
        np.testing.assert_array_equal(params_run[k], params_ref[k], err_msg=k)
    assert any(not np.array_equal(params_2[k], params_ref[k]) for k in params_ref)  # steps 3-4 trained

    test = evaluate_workdir(str(run), "test")
    assert test["split"] == "test" and test["step"] == 4 and np.isfinite(test["eval/forward_loss"])

    # Export: params.npz is the last checkpoint, vocab.json the run's vocabulary, model.json its config.
    out = tmp_path / "export"
    assert export_model(str(run), str(out)) == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "params.npz", "vocab.json"]
    words = json.loads((run / "tokenizer" / "tokenizer.json").read_text())["words"]
    assert json.loads((out / "vocab.json").read_text()) == words
    model_cfg = json.loads((out / "model.json").read_text())
    assert model_cfg == json.loads(json.dumps(load_run_config(str(run)).model.to_dict()))
    assert model_cfg["vocab_size"] == len(words)
    with np.load(out / "params.npz") as saved:
        exported = {k.replace("'", ""): saved[k] for k in saved.files}
    assert exported.keys() == params_run.keys()
    for k in params_run:
        np.testing.assert_array_equal(exported[k], params_run[k], err_msg=k)

    # The loaded export's layers are the trained biLM's: [token; token], then [forward_j;
    # backward_j], whose top forward / backward halves give the LM's next / previous-word logits.
    bilm = load_bilm(out)
    assert bilm.words == words and bilm.num_layers == 3 and bilm.dim == 32
    sentences = [["kan", "lon", "tus"], ["mira", "zzz", "kan", "lod", "tuxe"], []]
    vecs = bilm.embed(sentences)
    assert [v.shape for v in vecs] == [(3, 3, 32), (3, 5, 32), (3, 0, 32)]
    model, _, _ = load(str(run))
    chars, _ = batch_char_ids(sentences[:2], model.max_chars)
    chars = jnp.asarray(chars)
    x = model.encode_tokens(chars)
    fwd, bwd = model.contextual(x, chars[..., 0] != PAD)
    logits_fwd, logits_bwd = model(chars)
    P = model.proj_dim
    for i, s in enumerate(sentences[:2]):
        n = len(s)
        want = [np.concatenate([x[i, :n]] * 2, -1)] + [
            np.concatenate([f[i, :n], b[i, :n]], -1) for f, b in zip(fwd, bwd)]
        np.testing.assert_allclose(vecs[i], np.stack(want), atol=1e-5)
        kernel, bias = exported["[softmax_kernel]"], exported["[softmax_bias]"]
        np.testing.assert_allclose(vecs[i][-1, :, :P] @ kernel + bias, logits_fwd[i, :n], atol=1e-4)
        np.testing.assert_allclose(vecs[i][-1, :, P:] @ kernel + bias, logits_bwd[i, :n], atol=1e-4)
