"""n-gram LMs: counts, hand-computed and independent probabilities, normalisation, ARPA, errors."""

import collections
import math

import numpy as np
import pytest

from llm_jax.models.ngram import NGramLM, kn_discounts
from llm_jax.models.ngram_arpa import write_arpa
from llm_jax.models.ngram_counts import PAD, gram_ids, sentence_windows

SMOOTHINGS = ("mle", "add_k", "kn", "modified_kn")


def _stream(sentences, eos):
    return np.array([t for s in sentences for t in [*s, eos]], np.int64)


def _markov_sentences(n, n_words, seed):
    """Sentences from a sparse first-order Markov chain (each word has a few likely successors),
    so that every order has n-grams seen once, twice, three and four times, as in real text."""
    rng = np.random.default_rng(seed)
    successors = rng.integers(0, n_words, size=(n_words, 4))
    p = np.array([0.5, 0.25, 0.15, 0.1])
    out = []
    for _ in range(n):
        s = [int(rng.integers(n_words))]
        while rng.random() > 0.2:  # 5 words a sentence on average
            s.append(int(successors[s[-1], rng.choice(4, p=p)]))
        out.append(s)
    return out


W = 300  # words 0..299; eos = 300; V = 301
EOS, V = W, W + 1
TRAIN = _markov_sentences(1000, W, seed=0)
HELD_OUT = _markov_sentences(40, W, seed=1)


def test_sentence_windows_stop_at_the_sentence_start():
    rows = sentence_windows(np.array([5, 6, 9, 7, 9]), eos_id=9, bos_id=10, order=3)
    np.testing.assert_array_equal(rows, [[PAD, 10, 5], [10, 5, 6], [5, 6, 9],
                                         [PAD, 10, 7], [10, 7, 9]])


def test_counts_match_python_counting():
    lm = NGramLM.fit(_stream(TRAIN, EOS), vocab_size=V, eos_id=EOS, order=4, smoothing="kn")
    for k in range(2, 5):
        expected = collections.Counter()
        for s in TRAIN:
            seq = [V] + s + [EOS]  # V is the BOS id
            expected.update(tuple(seq[i - k + 1: i + 1]) for i in range(k - 1, len(seq)))
        rows = np.array([[PAD] * (4 - k) + list(g) for g in expected], np.int64)
        ids = gram_ids(lm.tables, rows, lm.base)[k][:, -1]
        assert (ids >= 0).all() and lm.tables[k - 1].size == len(expected)
        np.testing.assert_array_equal(lm.tables[k - 1].counts[ids], list(expected.values()))


def _reference_kn(sentences, order, modified):
    """Chen & Goodman's interpolated (modified) KN, written with dicts, one probability a call."""
    raw = [collections.Counter() for _ in range(order + 1)]
    for s in sentences:
        seq = ["B"] + s + [EOS]
        for i in range(1, len(seq)):
            for k in range(1, min(order, i + 1) + 1):
                raw[k][tuple(seq[i - k + 1: i + 1])] += 1
    adjusted = {order: raw[order]}
    for k in range(order - 1, 0, -1):
        cont = collections.Counter(g[1:] for g in raw[k + 1])
        adjusted[k] = {g: (c if g[0] == "B" else cont[g]) for g, c in raw[k].items()}
    discount = {}
    for k in range(1, order + 1):
        n = collections.Counter(adjusted[k].values())
        y = n[1] / (n[1] + 2 * n[2])
        discount[k] = ([0, 1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3]]
                       if modified else [0, y, y, y])

    def prob(w, h):
        lower = prob(w, h[1:]) if h else 1.0 / V
        k = len(h) + 1
        children = {g[-1]: c for g, c in adjusted[k].items() if g[:-1] == h}
        total = sum(children.values())
        if total == 0:
            return lower
        d = discount[k]
        gamma = sum(d[min(c, 3)] for c in children.values()) / total
        c = children.get(w, 0)
        return max(c - d[min(c, 3)], 0) / total + gamma * lower

    return prob


@pytest.mark.parametrize("smoothing", ["kn", "modified_kn"])
def test_kneser_ney_matches_a_dict_based_reference(smoothing):
    order = 3
    lm = NGramLM.fit(_stream(TRAIN, EOS), vocab_size=V, eos_id=EOS, order=order,
                     smoothing=smoothing)
    ref = _reference_kn(TRAIN, order, smoothing == "modified_kn")
    rows = lm.windows(_stream(HELD_OUT, EOS))
    got = np.exp(lm.logprobs(rows))
    want = [ref(int(r[-1]), tuple("B" if t == V else int(t) for t in r[:-1] if t != PAD))
            for r in rows]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_kneser_ney_bigram_hand_computed():
    # a=0 b=1 c=2 </s>=3; sentences "a b", "a c", "b b". Bigram D = n1/(n1+2 n2) = 5/9;
    # continuation counts a:1 b:3 c:1 </s>:2, D1 = 2/(2+2) = 1/2, so P1 = (1, 3, 1, 2)/7.
    # p(a | <s>) = (2 - 5/9)/3 + (10/27)(1/7) = 101/189, with gamma(<s>) = (5/9)(2/3) = 10/27
    lm = NGramLM.fit(_stream([[0, 1], [0, 2], [1, 1]], 3), vocab_size=4, eos_id=3, order=2,
                     smoothing="kn")
    np.testing.assert_allclose(np.exp(lm.next_token_logprobs([])), [101 / 189, 58 / 189, 10 / 189, 20 / 189])
    # p(b | a) = (1 - 5/9)/2 + (5/9)(3/7) = 29/63; p(</s> | a) = (5/9)(2/7) = 10/63
    np.testing.assert_allclose(np.exp(lm.next_token_logprobs([0])), [5 / 63, 29 / 63, 19 / 63, 10 / 63])
    np.testing.assert_allclose(kn_discounts(lm.kn_counts()[1], False)[1], 5 / 9)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("smoothing", SMOOTHINGS)
def test_probabilities_sum_to_one(smoothing, order):
    # cut n-grams at every order above 1: their mass must reach the backoff weights
    cutoffs = (1,) + (2,) * (order - 1) if smoothing.endswith("kn") and order > 1 else None
    lm = NGramLM.fit(_stream(TRAIN, EOS), vocab_size=V, eos_id=EOS, order=order,
                     smoothing=smoothing, k=0.3, cutoffs=cutoffs)
    histories = [[], [0], [0, 1], [3, 0, 0], [299, 298, 297]]  # the last two: rare/unseen contexts
    for h in histories:
        p = np.exp(lm.next_token_logprobs(h))
        if smoothing == "mle" and p.sum() == 0:  # MLE leaves an unseen history undefined
            continue
        assert p.sum() == pytest.approx(1.0, abs=1e-9), (smoothing, order, h)


def _nltk_model(cls, order, *args):
    from nltk.lm.preprocessing import padded_everygram_pipeline

    train, vocab = padded_everygram_pipeline(order, [[str(w) for w in s] for s in TRAIN])
    model = cls(*args, order)
    model.fit(train, vocab)
    return model


@pytest.mark.parametrize("smoothing", ["mle", "add_k"])
def test_mle_and_add_k_match_nltk(smoothing):
    from nltk.lm import MLE, Lidstone

    order, k = 3, 0.25
    ref = _nltk_model(MLE, order) if smoothing == "mle" else _nltk_model(Lidstone, order, k)
    # nltk's vocabulary also holds <s> and <UNK>: two ids that never occur make V equal.
    assert len(ref.vocab) == V + 2
    lm = NGramLM.fit(_stream(TRAIN, EOS), vocab_size=V + 2, eos_id=EOS, order=order,
                     smoothing=smoothing, k=k)
    names = [str(w) for w in range(W)] + ["</s>"]
    for h in [(0, 1), (1, 0), (2, 2), (299, 298)]:  # full-length histories away from <s>
        p = np.exp(lm.next_token_logprobs([0, *h]))[:V]
        want = [ref.score(name, [str(t) for t in h]) for name in names]
        np.testing.assert_allclose(p, want, rtol=1e-12)


def _read_arpa(path):
    logp, bow = {}, {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                gram = tuple(parts[1].split(" "))
                logp[gram] = float(parts[0])
                if len(parts) == 3:
                    bow[gram] = float(parts[2])
    return logp, bow


def _arpa_log10(logp, bow, h, w):
    if h + (w,) in logp:
        return logp[h + (w,)]
    return bow.get(h, 0.0) + _arpa_log10(logp, bow, h[1:], w)


@pytest.mark.parametrize("cutoffs", [None, (1, 2, 2)])
def test_arpa_backoff_reproduces_the_model(tmp_path, cutoffs):
    lm = NGramLM.fit(_stream(TRAIN, EOS), vocab_size=V, eos_id=EOS, order=3,
                     smoothing="modified_kn", cutoffs=cutoffs)
    words = [f"w{i}" for i in range(W)] + ["<eos>"]
    counts = write_arpa(lm, tmp_path / "lm.arpa", words)
    logp, bow = _read_arpa(tmp_path / "lm.arpa")
    assert sum(counts.values()) == len(logp) and counts[1] == V + 1
    names = words[:-1] + ["</s>", "<s>"]
    rows = lm.windows(_stream(HELD_OUT, EOS))
    got = [math.log(10) * _arpa_log10(logp, bow, tuple(names[t] for t in r[:-1] if t != PAD),
                                      names[r[-1]]) for r in rows]
    np.testing.assert_allclose(got, lm.logprobs(rows), atol=1e-4)
    with pytest.raises(ValueError, match="smoothing='mle'"):
        write_arpa(NGramLM.fit(_stream(TRAIN, EOS), vocab_size=V, eos_id=EOS, order=2,
                               smoothing="mle"), tmp_path / "x.arpa", words)


def test_save_load_and_sampling(tmp_path):
    lm = NGramLM.fit(_stream(TRAIN, EOS), vocab_size=V, eos_id=EOS, order=3, smoothing="kn")
    lm.save(tmp_path / "m.npz")
    back = NGramLM.load(tmp_path / "m.npz")
    rows = lm.windows(_stream(HELD_OUT, EOS))
    np.testing.assert_array_equal(back.logprobs(rows), lm.logprobs(rows))
    s1, s2 = (lm.sample(np.random.default_rng(3), max_len=50) for _ in range(2))
    assert s1 == s2 and all(0 <= t < V for t in s1)
    assert s1[-1] == EOS or len(s1) == 50
    sentences = [back.sample(np.random.default_rng(i)) for i in range(200)]
    # Sampled sentence lengths follow the model: close to the training mean (about 5 words).
    mean_len = np.mean([len(s) - 1 for s in sentences if s[-1] == EOS])
    assert abs(mean_len - np.mean([len(s) for s in TRAIN])) < 1.0


def test_bad_input_names_the_field():
    good = _stream(TRAIN, EOS)
    with pytest.raises(ValueError, match="order=0"):
        NGramLM.fit(good, vocab_size=V, eos_id=EOS, order=0)
    with pytest.raises(ValueError, match="no sentence ends"):
        NGramLM.fit(np.array([1, 2, 3]), vocab_size=V, eos_id=EOS, order=3)
    with pytest.raises(ValueError, match="does not end with a sentence end"):
        NGramLM.fit(np.array([1, EOS, 3]), vocab_size=V, eos_id=EOS, order=3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        NGramLM.fit(np.array([1, V, EOS]), vocab_size=V, eos_id=EOS, order=3)
    with pytest.raises(ValueError, match="smoothing='witten_bell'"):
        NGramLM.fit(good, vocab_size=V, eos_id=EOS, order=3, smoothing="witten_bell")
    with pytest.raises(ValueError, match="k=0"):
        NGramLM.fit(good, vocab_size=V, eos_id=EOS, order=3, smoothing="add_k", k=0)
    with pytest.raises(ValueError, match="cutoffs"):
        NGramLM.fit(good, vocab_size=V, eos_id=EOS, order=3, cutoffs=(1, 2))
