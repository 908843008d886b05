"""word2vec's sparse SGD update (Word2VecTask.make_update) against word2vec.c written out in NumPy.

For every variant (skip-gram / CBOW x negative sampling / hierarchical softmax) on a 5-word
vocabulary with fixed negatives and a hand-built Huffman tree:

* one example per batch: the update must be word2vec.c's, example after example (each with
  its own learning rate), because a chunk is a scan of SGD steps;
* several examples per batch: each example's word2vec.c update computed from the tables before
  the batch, summed (the batched SGD the task documents), padded examples contributing nothing.

The reference follows word2vec.c's TrainModelThread: h is the context word's vector
(skip-gram) or the mean of the context vectors (CBOW, `neu1 /= cw`); for each output row l2,
f = h . syn1[l2], g = (label - sigmoid(f)) * alpha, neu1e += g * syn1[l2] (before syn1[l2]
moves), syn1[l2] += g * h; then neu1e is added in full to the input vector, or to every context
word's vector for CBOW. Labels: 1 for the true word and 0 for noise (a draw equal to the true
word is skipped), or 1 - code on the Huffman path. Scores are kept well inside word2vec.c's
MAX_EXP = 6, where its sigmoid table and clipping do not matter.
"""

import numpy as np
import pytest

from llm_jax.data.huffman import HuffmanTree
from llm_jax.tasks.word2vec import Word2VecTask
from tests.conftest import load_config

V, DIM = 5, 8

# A fixed tree over the 5 words; inner nodes 0..3, root 3 (word2vec.c's vocab_size - 2).
#   root 3 -> (bit 0) node 2, (bit 1) node 1;  node 2 -> word 0, node 0;
#   node 0 -> word 1, word 2;                  node 1 -> word 3, word 4.
PATHS = {0: ([3, 2], [0, 0]), 1: ([3, 2, 0], [0, 1, 0]), 2: ([3, 2, 0], [0, 1, 1]),
         3: ([3, 1], [1, 0]), 4: ([3, 1], [1, 1])}


def _tree():
    L = max(len(p) for p, _ in PATHS.values())
    points, codes = np.zeros((V, L), np.int32), np.zeros((V, L), np.uint8)
    lengths = np.zeros(V, np.int32)
    for w, (p, c) in PATHS.items():
        points[w, :len(p)], codes[w, :len(c)], lengths[w] = p, c, len(p)
    return HuffmanTree(codes, points, lengths)


def _task(tmp_path, arch, objective):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c d a b a e\nb c a d\n" * 5)
    c = load_config("word2vec", "tiny")
    c.task.update(corpus_file=str(corpus), min_count=1, max_sentences=0, architecture=arch,
                  objective=objective)
    task = Word2VecTask(c)
    assert task.vocab_size == V
    if objective == "hs":
        task.tree = _tree()  # make_update reads the tree: use the fixed one, not the corpus's
        assert task.output_rows == V - 1
    return task


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _word2vec_c_example(syn0, syn1, arch, inputs, target, negatives, alpha):
    """word2vec.c's update for one example, in place on float64 tables.

    inputs: the context word (skip-gram) or the context words with -1 absent (CBOW).
    negatives: the noise draws (negative sampling) or None (hierarchical softmax).
    """
    if arch == "sg":
        rows_in = [int(inputs)]
        h = syn0[rows_in[0]].copy()
    else:
        rows_in = [int(i) for i in inputs if i >= 0]
        h = syn0[rows_in].sum(0) / len(rows_in)  # neu1 /= cw
    if negatives is None:
        points, codes = PATHS[int(target)]
        pairs = [(p, 1.0 - c) for p, c in zip(points, codes)]  # g = (1 - code - f) * alpha
    else:
        pairs = [(int(target), 1.0)] + [(int(n), 0.0) for n in negatives if n != target]
    neu1e = np.zeros_like(h)
    for row, label in pairs:
        f = h @ syn1[row]
        assert abs(f) < 6.0  # inside MAX_EXP: no table lookup or clipping in word2vec.c
        g = (label - _sigmoid(f)) * alpha
        neu1e += g * syn1[row]
        syn1[row] += g * h
    for r in rows_in:  # CBOW: every context word gets the whole neu1e
        syn0[r] += neu1e


def _tables(rng, objective):
    w_in = (rng.normal(size=(V, DIM)) * 0.4).astype(np.float32)
    w_out = (rng.normal(size=(V - 1 if objective == "hs" else V, DIM)) * 0.4).astype(np.float32)
    return w_in, w_out


# Examples: (inputs, target, negatives). CBOW windows hold 4 slots with -1 absent; one repeats a
# context word (it counts twice in the mean and gets neu1e twice, as in word2vec.c); the last
# example of each draws its true word as noise (skipped, as in word2vec.c).
SG_EXAMPLES = [(1, 0, [2, 3]), (0, 2, [4, 1]), (3, 1, [1, 4]), (4, 3, [0, 2]), (2, 4, [3, 0]),
               (0, 1, [1, 4])]
CBOW_EXAMPLES = [([1, 2, -1, -1], 0, [3, 4]), ([0, 3, 4, 1], 2, [1, 0]), ([2, -1, -1, -1], 1, [4, 3]),
                 ([4, 0, 0, -1], 3, [2, 1]), ([3, 1, 2, -1], 4, [0, 2]), ([1, -1, 4, -1], 1, [1, 3])]
LRS = [0.5, 0.3, 0.4, 0.2, 0.45, 0.35]


def _chunk(examples, objective, S, B, lrs, weights=None):
    inputs = np.array([e[0] for e in examples], np.int32)
    chunk = dict(inputs=inputs.reshape(S, B, *inputs.shape[1:]),
                 targets=np.array([e[1] for e in examples], np.int32).reshape(S, B),
                 weights=(np.ones(S * B, np.float32) if weights is None
                          else np.asarray(weights, np.float32)).reshape(S, B),
                 lr=np.asarray(lrs, np.float32))
    if objective == "neg":
        chunk["negatives"] = np.array([e[2] for e in examples], np.int32).reshape(S, B, -1)
    return chunk


VARIANTS = [("sg", "neg"), ("sg", "hs"), ("cbow", "neg"), ("cbow", "hs")]


@pytest.mark.parametrize("arch,objective", VARIANTS)
def test_one_example_per_step_is_word2vec_c(tmp_path, arch, objective):
    """A chunk of 6 single-example steps, each with its own alpha: word2vec.c's sequential SGD."""
    task = _task(tmp_path, arch, objective)
    examples = SG_EXAMPLES if arch == "sg" else CBOW_EXAMPLES
    w_in, w_out = _tables(np.random.default_rng(0), objective)
    chunk = _chunk(examples, objective, len(examples), 1, LRS)
    got_in, got_out, loss, n = task.make_update()(w_in, w_out, chunk)

    syn0, syn1 = w_in.astype(np.float64), w_out.astype(np.float64)
    for (inputs, target, negs), alpha in zip(examples, LRS):
        _word2vec_c_example(syn0, syn1, arch, inputs, target, negs if objective == "neg" else None,
                            alpha)
    # the update moved the tables by far more than the tolerance: the comparison is not vacuous
    assert np.abs(syn0 - w_in).max() > 1e-2 and np.abs(syn1 - w_out).max() > 1e-2
    np.testing.assert_allclose(np.asarray(got_in), syn0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got_out), syn1, rtol=1e-6, atol=1e-6)
    assert float(n) == len(examples)


@pytest.mark.parametrize("arch,objective", VARIANTS)
def test_batched_step_sums_word2vec_c_updates_from_the_tables_before_it(tmp_path, arch, objective):
    """Two steps of 3 examples (the last one padding): within a step each example's word2vec.c
    update is computed from the tables before the step and the updates are summed; the second
    step starts from the first one's result."""
    task = _task(tmp_path, arch, objective)
    examples = SG_EXAMPLES if arch == "sg" else CBOW_EXAMPLES
    weights = [1, 1, 1, 1, 1, 0]
    lrs = [0.4, 0.25]
    w_in, w_out = _tables(np.random.default_rng(1), objective)
    chunk = _chunk(examples, objective, 2, 3, lrs, weights)
    got_in, got_out, _, n = task.make_update()(w_in, w_out, chunk)

    syn0, syn1 = w_in.astype(np.float64), w_out.astype(np.float64)
    for s, alpha in enumerate(lrs):
        delta0, delta1 = np.zeros_like(syn0), np.zeros_like(syn1)
        for (inputs, target, negs), w in list(zip(examples, weights))[3 * s:3 * s + 3]:
            if not w:
                continue
            a, b = syn0.copy(), syn1.copy()
            _word2vec_c_example(a, b, arch, inputs, target, negs if objective == "neg" else None, alpha)
            delta0 += a - syn0
            delta1 += b - syn1
        syn0, syn1 = syn0 + delta0, syn1 + delta1
    np.testing.assert_allclose(np.asarray(got_in), syn0, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(got_out), syn1, rtol=1e-6, atol=1e-6)
    assert float(n) == 5


def test_cbow_h_is_the_mean_and_each_context_word_gets_the_whole_error(tmp_path):
    """One CBOW example, worked by hand: 2 context words, 1 output row with a zero vector.

    With syn1neg[target] = 0, f = 0 and g = (1 - 1/2) * alpha; the output row moves by g * h
    where h is the *mean* of the context vectors, and each context vector moves by g * 0 = 0.
    A second step then sees the moved row: each context vector moves by g2 * syn1neg[target]
    in full (word2vec.c does not divide neu1e by cw)."""
    task = _task(tmp_path, "cbow", "neg")
    w_in = np.zeros((V, DIM), np.float32)
    w_in[1], w_in[2] = 0.2, 0.6  # mean 0.4, sum 0.8
    w_out = np.zeros((V, DIM), np.float32)
    chunk = dict(inputs=np.array([[[1, 2, -1, -1]]] * 2, np.int32), targets=np.zeros((2, 1), np.int32),
                 negatives=np.zeros((2, 1, 1), np.int32),  # the true word: skipped
                 weights=np.ones((2, 1), np.float32), lr=np.array([0.5, 0.5], np.float32))
    got_in, got_out, _, _ = task.make_update()(w_in, w_out, chunk)
    row = 0.5 * 0.5 * 0.4                          # after step 1: g * mean
    f2 = DIM * 0.4 * row                           # step 2: h . syn1neg[0]
    g2 = (1 - _sigmoid(f2)) * 0.5
    np.testing.assert_allclose(np.asarray(got_out)[0], row + g2 * 0.4, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got_in)[1], 0.2 + g2 * row, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got_in)[2], 0.6 + g2 * row, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(got_in)[[0, 3, 4]], 0.0)
