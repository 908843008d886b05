"""Softmax cross-entropy with label smoothing and z-loss, computed in float32."""

import jax
import jax.numpy as jnp


def _static_float(x):
    """float(x) when known at trace time (Python/NumPy scalar), else None (traced)."""
    try:
        return float(x)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def cross_entropy_per_token(logits, labels, *, label_smoothing=0.0, z_loss=0.0):
    """Per-token (loss, nll), both float32 and shaped like `labels`.

    nll = -log softmax(logits)[label]. Smoothing matches optax.smooth_labels
    (target = (1-eps) * onehot + eps / V); z_loss adds z_loss * logsumexp**2.
    Labels outside [0, V) give NaN rather than a silently wrapped class.
    """
    eps = _static_float(label_smoothing)
    if eps is not None and not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    logits = jnp.asarray(logits).astype(jnp.float32)
    labels = jnp.asarray(labels)
    vocab = logits.shape[-1]
    lse = jax.nn.logsumexp(logits, axis=-1)
    label_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1, mode="clip")[..., 0]
    nll = jnp.where((labels >= 0) & (labels < vocab), lse - label_logit, jnp.nan)
    loss = nll
    if eps != 0.0:  # skips the extra vocab reduction in the common case
        # mean_v(-log p_v) = lse - mean_v(logits): avoids materialising log-probs.
        smooth = lse - jnp.mean(logits, axis=-1)
        loss = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    if _static_float(z_loss) != 0.0:
        loss = loss + z_loss * jnp.square(lse)
    return loss, nll


def cross_entropy_sums(logits, labels, *, label_smoothing=0.0, weights=None, z_loss=0.0):
    """Weighted sums (sum(w * loss), sum(w * nll), sum(w)) of the per-token (loss, nll).

    Sums, not means, so that a mean over batches of different sizes or padding is exact:
    divide the totals at the end. Tokens with weight 0 are excluded outright, so padding may
    carry any label id.
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {labels.shape} must equal logits shape {logits.shape} "
            f"without its last (vocab) axis, i.e. {logits.shape[:-1]}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
    loss, nll = cross_entropy_per_token(
        logits, labels, label_smoothing=label_smoothing, z_loss=z_loss
    )
    w = token_weights(weights, labels.shape)
    return weighted_sum(loss, w), weighted_sum(nll, w), jnp.sum(w)


def token_weights(weights, shape):
    """float32 weights broadcast to `shape`; None means every token counts once."""
    if weights is None:
        return jnp.ones(shape, jnp.float32)
    weights = jnp.asarray(weights)
    try:
        return jnp.broadcast_to(weights, shape).astype(jnp.float32)
    except ValueError as e:
        raise ValueError(
            f"weights shape {weights.shape} does not broadcast to labels shape {shape}"
        ) from e


def weighted_sum(x, w):
    # where, not w * x: a NaN from an ignored (weight 0) token must not leak in.
    return jnp.sum(jnp.where(w != 0, w * x, 0.0))


def softmax_cross_entropy(logits, labels, *, label_smoothing=0.0, weights=None, z_loss=0.0):
    """Weighted means sum(w * x) / max(sum(w), tiny) of the per-token (loss, nll)."""
    loss_sum, nll_sum, weight = cross_entropy_sums(
        logits, labels, label_smoothing=label_smoothing, weights=weights, z_loss=z_loss)
    denom = jnp.maximum(weight, jnp.finfo(jnp.float32).tiny)
    return loss_sum / denom, nll_sum / denom
