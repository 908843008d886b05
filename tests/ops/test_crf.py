"""ops/crf.py against brute force: every tag sequence of a few short rows enumerated, the
positions the mask skips left out of the chain."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.ops.crf import crf_decode, crf_log_likelihood

C = 3


def _score(e_TC, tags, positions, trans, start, end):
    s = start[tags[0]] + end[tags[-1]]
    s += sum(e_TC[p, t] for p, t in zip(positions, tags))
    s += sum(trans[a, b] for a, b in zip(tags[:-1], tags[1:]))
    return s


def _brute(e_TC, mask_T, trans, start, end):
    """(log Z, {tags: score}) over the masked positions, by enumeration."""
    positions = np.nonzero(mask_T)[0]
    scores = {tags: _score(e_TC, tags, positions, trans, start, end)
              for tags in itertools.product(range(C), repeat=len(positions))}
    return np.logaddexp.reduce(list(scores.values())), scores, positions


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    B, T = 4, 6
    e = rng.normal(size=(B, T, C)).astype(np.float32)
    trans = rng.normal(size=(C, C)).astype(np.float32)
    start, end = rng.normal(size=C).astype(np.float32), rng.normal(size=C).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1, 1],      # every position
                     [0, 1, 0, 1, 1, 0],      # holes: sub-words, [CLS], padding
                     [0, 0, 0, 0, 1, 0],      # one word
                     [0, 0, 0, 0, 0, 0]], bool)  # none
    tags = rng.integers(0, C, size=(B, T)).astype(np.int32)
    return e, tags, mask, trans, start, end


def test_log_likelihood_equals_enumeration(problem):
    e, tags, mask, trans, start, end = problem
    got = np.asarray(crf_log_likelihood(e, tags, mask, trans, start, end))
    for b in range(3):
        log_z, scores, positions = _brute(e[b], mask[b], trans, start, end)
        want = scores[tuple(tags[b, positions])] - log_z
        np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-5)
    assert got[3] == 0.0  # a row with no word


def test_probabilities_sum_to_one(problem):
    e, _, mask, trans, start, end = problem
    b, positions = 1, np.nonzero(mask[1])[0]
    total = 0.0
    for seq in itertools.product(range(C), repeat=len(positions)):
        tags = np.zeros((1, e.shape[1]), np.int32)
        tags[0, positions] = seq
        total += np.exp(float(crf_log_likelihood(e[b:b + 1], tags, mask[b:b + 1], trans, start,
                                                 end)[0]))
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_decode_is_the_best_sequence(problem):
    e, _, mask, trans, start, end = problem
    got = np.asarray(crf_decode(e, mask, trans, start, end))
    for b in range(3):
        _, scores, positions = _brute(e[b], mask[b], trans, start, end)
        assert tuple(got[b, positions]) == max(scores, key=scores.get)


def test_decode_with_zero_transitions_is_the_argmax(problem):
    e, _, mask, _, _, _ = problem
    z = np.zeros(C, np.float32)
    got = np.asarray(crf_decode(e, mask, np.zeros((C, C), np.float32), z, z))
    np.testing.assert_array_equal(got[mask], np.argmax(e, -1)[mask])


def test_transitions_steer_the_path():
    """A forbidden transition (I after O, as IOB2 forbids) is never decoded."""
    e = np.array([[[2.0, 0.0, 1.9], [0.0, 0.0, 3.0]]], np.float32)  # tags O, B, I
    trans = np.zeros((3, 3), np.float32)
    trans[0, 2] = -1e4  # O -> I
    z = np.zeros(3, np.float32)
    mask = np.ones((1, 2), bool)
    assert np.asarray(crf_decode(e, mask, trans, z, z)).tolist() == [[2, 2]]


def test_gradients_are_finite_and_jit(problem):
    e, tags, mask, trans, start, end = problem

    def nll(e, trans, start, end):
        return -jnp.sum(crf_log_likelihood(e, tags, mask, trans, start, end))

    grads = jax.jit(jax.grad(nll, argnums=(0, 1, 2, 3)))(e, trans, start, end)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
    # the emission gradient is zero where the chain does not read
    assert np.all(np.asarray(grads[0])[~mask] == 0.0)


def test_shapes_are_checked(problem):
    e, tags, mask, trans, start, end = problem
    with pytest.raises(ValueError, match="mask shape"):
        crf_decode(e, mask[:, :3], trans, start, end)
    with pytest.raises(ValueError, match="for 3 tags"):
        crf_log_likelihood(e, tags, mask, trans[:2], start, end)
