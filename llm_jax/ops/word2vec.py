"""word2vec's objectives as pure functions of gathered embedding rows.

Both losses are sums over a batch, so `-lr * grad` of them is exactly the reference tool's
per-pair update `g = (label - sigmoid(h.v)) * alpha` summed over the batch.
"""

import jax
import jax.numpy as jnp


def negative_sampling_loss(h_BD, out_BSD, weights_BS):
    """Skip-gram / CBOW negative sampling: out[:, 0] is the true word, out[:, 1:] the noise words.

    loss = -log sig(h.v_0) - sum_k log sig(-h.v_k), each term scaled by its weight (0 drops a
    padded pair, or a noise draw that hit the true word, which the reference tool skips).
    Returns float32[B].
    """
    score_BS = jnp.einsum("bd,bsd->bs", h_BD, out_BSD, preferred_element_type=jnp.float32)
    sign_S = jnp.concatenate([jnp.ones((1,)), -jnp.ones((out_BSD.shape[1] - 1,))])
    return -jnp.sum(weights_BS * jax.nn.log_sigmoid(sign_S * score_BS), axis=-1)


def hierarchical_softmax_loss(h_BD, nodes_BLD, codes_BL, mask_BL):
    """-log P(word | h) over its Huffman path: at each inner node, P(bit) = sig((1 - 2 bit) h.node).

    Returns float32[B]; `mask_BL` is 1 on the real path nodes and 0 on padding.
    """
    score_BL = jnp.einsum("bd,bld->bl", h_BD, nodes_BLD, preferred_element_type=jnp.float32)
    sign_BL = 1.0 - 2.0 * codes_BL.astype(jnp.float32)
    return -jnp.sum(mask_BL * jax.nn.log_sigmoid(sign_BL * score_BL), axis=-1)


def cbow_mean(ctx_BCD, mask_BC):
    """Mean of the present context vectors (gensim's cbow_mean=1); zeros where none is present."""
    count_B = jnp.maximum(jnp.sum(mask_BC, axis=-1), 1.0)
    return jnp.einsum("bcd,bc->bd", ctx_BCD, mask_BC) / count_B[:, None]


def loss_and_row_grads(loss_fn, h_BD, out_rows, *args):
    """(sum of loss_fn over the batch, d/dh, d/d(out rows)): the gradients w.r.t. gathered rows."""
    total = lambda h, o: jnp.sum(loss_fn(h, o, *args))
    return jax.value_and_grad(total, argnums=(0, 1))(h_BD, out_rows)


def logistic_loss_and_row_grads(h_BD, out_BSD, labels_BS, weights_BS):
    """Both word2vec objectives in closed form: (summed loss, d/dh, d/d(out rows)).

    Each (h, row) score s is a binary logistic regression with its label (negative sampling:
    1 for the true word, 0 for noise; hierarchical softmax: 1 - code), so d loss / d s is
    weight * (sigmoid(s) - label), the C tool's `g` with the sign flipped. Writing the two row
    gradients out saves the backward pass jax.grad would trace: the word2vec update runs on
    one core and this is its inner loop (experiments/word2vec/update_variants.py times both).
    """
    score_BS = jnp.einsum("bd,bsd->bs", h_BD, out_BSD, preferred_element_type=jnp.float32)
    sign_BS = 2.0 * labels_BS - 1.0
    loss = -jnp.sum(weights_BS * jax.nn.log_sigmoid(sign_BS * score_BS))
    g_BS = weights_BS * (jax.nn.sigmoid(score_BS) - labels_BS)
    d_h = jnp.einsum("bs,bsd->bd", g_BS, out_BSD)
    return loss, (d_h, g_BS[..., None] * h_BD[:, None, :])


def negative_sampling_labels(out_BSD):
    """1 for the true word (column 0), 0 for the noise words: labels for the logistic form."""
    return jnp.zeros(out_BSD.shape[:2], jnp.float32).at[:, 0].set(1.0)
