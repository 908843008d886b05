import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.tasks.classification import SentenceClassifier, classification_loss


def _batch(kind, B=3, T=4, D=6, L=3):
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], bool)  # the last is empty
    x = {"ids": np.arange(B * T).reshape(B, T) % 5,
         "vectors": np.random.default_rng(0).normal(size=(B, T, D)).astype(np.float32),
         "layers": np.random.default_rng(1).normal(size=(B, L, T, D)).astype(np.float32)}
    inputs = {k: jnp.asarray(x[k]) for k in kind.split("+")}
    return {**inputs, "mask": jnp.asarray(mask), "labels": jnp.array([0, 1, 1])}


def _reference(logits, labels):
    """float64 per-example cross-entropy and correctness (argmax, first index on ties)."""
    m = logits.max(-1)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(-1))
    return lse - logits[np.arange(len(labels)), labels], logits.argmax(-1) == labels


def test_loss_and_accuracy_hand_computed():
    # rows: right, wrong, right, a tie (argmax takes class 0: right); accuracy 3/4
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [0.5, 0.5]])
    batch = {"labels": jnp.array([0, 0, 1, 0])}
    loss, metrics = classification_loss(lambda b, dropout_key=None: logits, batch)
    want = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)), np.log1p(np.exp(-2.0)),
                    np.log(2.0)])  # -log softmax = log(1 + exp(other - own))
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert float(metrics["loss"]) == pytest.approx(want, rel=1e-6)
    assert float(metrics["accuracy"]) == 0.75


@pytest.mark.parametrize("kind", ["ids", "vectors", "layers", "ids+layers"])
def test_every_input_kind_gives_finite_logits_and_gradients(kind):
    model = SentenceClassifier(kind, 6, vocab_size=5, num_layers=3, hidden=8, rngs=nnx.Rngs(0))
    batch = _batch(kind)
    assert model(batch).shape == (3, 2)
    (loss, metrics), grads = nnx.value_and_grad(
        lambda m: classification_loss(m, batch, jax.random.key(0)), has_aux=True)(model)
    logits = np.asarray(model(batch, dropout_key=jax.random.key(0)), np.float64)
    nll, correct = _reference(logits, np.asarray(batch["labels"]))
    np.testing.assert_allclose([float(loss), float(metrics["loss"])], nll.mean(), rtol=1e-5)
    assert float(metrics["accuracy"]) == pytest.approx(correct.mean(), abs=1e-7)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    if "layers" in kind:  # the scalar mix is trained with the classifier
        assert float(jnp.abs(grads.mix.weights[...]).sum()) > 0
    if "ids" in kind:  # and so is the embedding table
        assert float(jnp.abs(grads.embed[...]).sum()) > 0


def test_concatenated_input_uses_both_the_embedding_and_the_biLM_layers():
    model = SentenceClassifier("ids+layers", 6, vocab_size=5, num_layers=3, hidden=8,
                               rngs=nnx.Rngs(0))
    batch = _batch("ids+layers")
    # trained-looking mix weights, so that the ScalarMix is not the plain mean it starts as
    model.mix.weights[...] = jnp.array([1.0, 0.0, -1.0])
    model.mix.gamma[...] = jnp.array(0.5)
    x = model.token_vectors(batch)
    assert x.shape == (3, 4, 12)
    np.testing.assert_allclose(x[..., :6], model.embed[...][batch["ids"]], rtol=1e-6)
    s = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    want = 0.5 * np.einsum("l,bltd->btd", s, np.asarray(batch["layers"], np.float64))
    np.testing.assert_allclose(x[..., 6:], want, rtol=1e-5, atol=1e-6)


def test_padding_does_not_change_the_prediction():
    model = SentenceClassifier("vectors", 6, hidden=8, rngs=nnx.Rngs(0))
    batch = _batch("vectors")
    padded = dict(batch, vectors=batch["vectors"].at[:, 3:].set(50.0))
    np.testing.assert_allclose(model(batch), model(padded), rtol=1e-6)


def test_bad_input_kind_is_named():
    with pytest.raises(ValueError, match="input_kind"):
        SentenceClassifier("chars", 6, rngs=nnx.Rngs(0))
