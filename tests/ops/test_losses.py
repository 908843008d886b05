import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from llm_jax.ops import cross_entropy_per_token, softmax_cross_entropy

rng = np.random.default_rng(0)
B, T, V = 2, 3, 7
LOGITS = (rng.standard_normal((B, T, V)) * 2).astype(np.float32)
LABELS = rng.integers(0, V, (B, T))


def ref_per_token(logits, labels, eps=0.0, z=0.0):
    """float64: cross-entropy against target (1-eps) * onehot + eps/V, plus z * lse**2."""
    logits = np.asarray(logits, np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    logp = logits - lse[..., None]
    onehot = np.eye(logits.shape[-1])[labels]
    target = (1 - eps) * onehot + eps / logits.shape[-1]
    nll = -(onehot * logp).sum(-1)
    return -(target * logp).sum(-1) + z * lse**2, nll, target, lse


def test_plain_cross_entropy():
    loss, nll = cross_entropy_per_token(LOGITS, LABELS)
    ref_loss, ref_nll, _, _ = ref_per_token(LOGITS, LABELS)
    assert loss.shape == nll.shape == LABELS.shape and loss.dtype == jnp.float32
    np.testing.assert_allclose(nll, ref_nll, rtol=1e-5)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)


@pytest.mark.parametrize("eps,z", [(0.1, 0.0), (0.0, 1e-2), (0.2, 1e-3)])
def test_smoothing_and_z_loss(eps, z):
    loss, nll = cross_entropy_per_token(LOGITS, LABELS, label_smoothing=eps, z_loss=z)
    ref_loss, ref_nll, _, _ = ref_per_token(LOGITS, LABELS, eps, z)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(nll, ref_nll, rtol=1e-5)  # nll never smoothed


def test_smoothing_matches_optax():
    eps = 0.1
    onehot = jax.nn.one_hot(LABELS, V)
    expected = optax.softmax_cross_entropy(LOGITS, optax.smooth_labels(onehot, eps))
    loss, _ = cross_entropy_per_token(LOGITS, LABELS, label_smoothing=eps)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_traced_hyperparameters():
    # Sweeps may pass label_smoothing / z_loss as traced values.
    fn = jax.jit(lambda e, z: cross_entropy_per_token(LOGITS, LABELS, label_smoothing=e, z_loss=z))
    np.testing.assert_allclose(
        fn(0.1, 1e-2)[0], ref_per_token(LOGITS, LABELS, 0.1, 1e-2)[0], rtol=1e-5
    )


@pytest.mark.parametrize("eps,z", [(0.0, 0.0), (0.1, 0.0), (0.1, 1e-2)])
def test_gradient_is_softmax_minus_target(eps, z):
    grad = jax.grad(
        lambda lg: cross_entropy_per_token(lg, LABELS, label_smoothing=eps, z_loss=z)[0].sum()
    )(LOGITS)
    _, _, target, lse = ref_per_token(LOGITS, LABELS, eps)
    p = np.exp(LOGITS - lse[..., None])
    # d(z * lse^2)/dlogits = 2 z lse softmax.
    expected = p - target + 2 * z * lse[..., None] * p
    np.testing.assert_allclose(grad, expected, atol=1e-5)


def test_weighted_mean():
    w = rng.random((B, T)).astype(np.float32)
    loss, nll = softmax_cross_entropy(LOGITS, LABELS, label_smoothing=0.1, weights=w, z_loss=1e-3)
    ref_loss, ref_nll, _, _ = ref_per_token(LOGITS, LABELS, 0.1, 1e-3)
    np.testing.assert_allclose(loss, (w * ref_loss).sum() / w.sum(), rtol=1e-5)
    np.testing.assert_allclose(nll, (w * ref_nll).sum() / w.sum(), rtol=1e-5)
    # Default weights are ones: the plain mean.
    loss, nll = softmax_cross_entropy(LOGITS, LABELS)
    np.testing.assert_allclose(loss, ref_per_token(LOGITS, LABELS)[0].mean(), rtol=1e-5)
    np.testing.assert_allclose(nll, loss, rtol=1e-6)


def test_zero_weights_give_zero_not_nan():
    loss, nll = softmax_cross_entropy(LOGITS, LABELS, weights=np.zeros((B, T)))
    assert float(loss) == 0.0 and float(nll) == 0.0


def test_padding_label_with_zero_weight_is_ignored():
    labels = LABELS.copy()
    labels[1, 2] = -1  # out-of-range id on a padded position
    w = np.ones((B, T), np.float32)
    w[1, 2] = 0.0
    assert np.isnan(cross_entropy_per_token(LOGITS, labels)[1][1, 2])
    fn = lambda lg: softmax_cross_entropy(lg, labels, weights=w)[0]
    ref = ref_per_token(LOGITS, LABELS)[1]
    np.testing.assert_allclose(fn(LOGITS), (w * ref).sum() / w.sum(), rtol=1e-5)
    assert np.all(np.isfinite(jax.grad(fn)(LOGITS)))


def test_bf16_logits_computed_in_f32():
    logits16 = jnp.asarray(LOGITS * 10, jnp.bfloat16)
    loss, nll = softmax_cross_entropy(logits16, LABELS)
    assert loss.dtype == nll.dtype == jnp.float32
    ref = ref_per_token(np.asarray(logits16, np.float32), LABELS)[1].mean()
    np.testing.assert_allclose(nll, ref, rtol=1e-5)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3, 7\)"):
        softmax_cross_entropy(LOGITS, LABELS.reshape(3, 2))
    with pytest.raises(ValueError, match="weights"):
        softmax_cross_entropy(LOGITS, LABELS, weights=np.ones(2))
    with pytest.raises(ValueError, match="integer"):
        softmax_cross_entropy(LOGITS, LABELS.astype(np.float32))
    with pytest.raises(ValueError, match="label_smoothing"):
        cross_entropy_per_token(LOGITS, LABELS, label_smoothing=1.5)
