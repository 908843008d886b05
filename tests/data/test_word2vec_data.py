"""word2vec's vocabulary, subsampling, noise sampler, windows, Huffman tree and epoch batches."""

import numpy as np
import pytest

from llm_jax.data import word2vec_data as wd
from llm_jax.data.huffman import build_huffman
from llm_jax.data.word2vec_batches import EpochBatches

SENTENCES = [s.split() for s in ["the cat sat on the mat", "the dog sat", "a cat and a dog", "the end"]]


def test_vocab_sorted_by_count_with_min_count_and_cap():
    v = wd.build_vocab(SENTENCES, min_count=2)
    assert v.words[0] == "the" and list(v.counts) == sorted(v.counts, reverse=True)
    assert set(v.words) == {"the", "cat", "sat", "dog", "a"}
    assert v.words[1:] == ["cat", "sat", "dog", "a"]  # ties keep first-seen order, as gensim
    assert wd.build_vocab(SENTENCES, min_count=1, max_vocab=3).words == ["the", "cat", "sat"]


def test_empty_vocabulary_names_the_field_and_source():
    with pytest.raises(ValueError, match=r"my.txt is empty.*config.task.min_count=50"):
        wd.build_vocab(SENTENCES, min_count=50, source="my.txt")


def test_missing_and_empty_corpus_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        wd.read_sentences(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n")
    with pytest.raises(ValueError, match=r"empty.txt is empty"):
        wd.read_sentences(empty)


def test_encode_drops_unknown_words_but_counts_raw_words():
    v = wd.build_vocab(SENTENCES, min_count=2)
    c = wd.encode(SENTENCES, v)
    assert c.raw_words == sum(map(len, SENTENCES))
    assert len(c.ids) == sum(w in v.index for s in SENTENCES for w in s)
    assert c.sentence_ids[-1] == 3


def test_keep_probabilities_follow_the_word2vec_formula():
    counts = np.array([10_000, 1_000, 100, 10, 1])
    sample = 1e-3
    t = sample * counts.sum()
    expected = np.minimum((np.sqrt(counts / t) + 1) * t / counts, 1.0)  # gensim's word_probability
    np.testing.assert_allclose(wd.keep_probabilities(counts, sample), expected)
    assert wd.keep_probabilities(counts, sample)[0] < 0.2 and wd.keep_probabilities(counts, sample)[-1] == 1
    np.testing.assert_array_equal(wd.keep_probabilities(counts, 0), 1.0)


def test_subsampling_keeps_words_at_their_probability():
    ids = np.repeat(np.arange(3, dtype=np.int32), 20_000)
    corpus = wd.Corpus(ids, np.zeros_like(ids), len(ids))
    keep = np.array([0.1, 0.5, 1.0])
    kept, _, _ = wd.subsample(corpus, keep, np.random.default_rng(0))
    rates = np.bincount(kept, minlength=3) / 20_000
    np.testing.assert_allclose(rates, keep, atol=0.01)


def test_alias_sampler_draws_the_unigram_075_distribution():
    counts = np.array([500, 120, 40, 9, 1])
    p = wd.noise_distribution(counts, 0.75)
    np.testing.assert_allclose(p, counts ** 0.75 / np.sum(counts ** 0.75))
    sampler = wd.AliasSampler(p)
    np.testing.assert_allclose(sampler.probabilities(), p, atol=1e-12)
    draws = sampler.sample(np.random.default_rng(0), 400_000)
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / draws.size, p, atol=0.003)


def _pairs_by_loops(sent, window, shrink):
    pairs = set()
    for i in range(len(sent)):
        reach = window - shrink[i]
        for j in range(max(0, i - reach), min(len(sent), i + reach + 1)):
            if j != i and sent[j] == sent[i]:
                pairs.add((i, j))
    return pairs


def test_skipgram_pairs_match_a_per_word_loop_with_dynamic_window():
    rng = np.random.default_rng(0)
    sent = np.repeat([0, 1, 2], [7, 1, 12]).astype(np.int32)
    ids = np.arange(len(sent), dtype=np.int32)
    shrink = rng.integers(0, 3, len(sent))
    centre, context = wd.skipgram_pairs(ids, sent, 3, rng, shrink=shrink)
    assert set(zip(centre.tolist(), context.tolist())) == _pairs_by_loops(sent, 3, shrink)
    assert len(centre) == len(set(zip(centre.tolist(), context.tolist())))
    assert np.all(np.diff(centre) >= 0)  # corpus order, as the reference tool trains
    ctx = wd.cbow_windows(ids, sent, 3, rng, shrink=shrink)
    assert {(i, j) for i, row in enumerate(ctx) for j in row if j >= 0} == _pairs_by_loops(sent, 3, shrink)


def test_dynamic_window_shrinks_uniformly():
    n = 50_000
    ids = np.zeros(n, np.int32)
    centre, _ = wd.skipgram_pairs(ids, np.zeros(n, np.int32), 5, np.random.default_rng(0))
    # reach uniform in 1..5 -> on average 2 * 3 = 6 context words per centre word
    assert abs(len(centre) / n - 6.0) < 0.05


def test_learning_rate_decays_linearly_to_min_alpha():
    lr = wd.learning_rates(np.array([0.0, 0.5, 1.0, 1.2]), 0.025, 1e-4)
    np.testing.assert_allclose(lr, [0.025, (0.025 + 1e-4) / 2, 1e-4, 1e-4])


def test_huffman_codes_are_prefix_free_and_optimal():
    rng = np.random.default_rng(0)
    counts = np.sort(rng.zipf(1.3, 300) % 10_000 + 1)[::-1]
    tree = build_huffman(counts)
    codes = ["".join(map(str, tree.codes[w, :tree.lengths[w]])) for w in range(len(counts))]
    assert len(set(codes)) == len(codes)
    ordered = sorted(codes)
    assert not any(b.startswith(a) for a, b in zip(ordered, ordered[1:]))  # prefix-free
    assert np.isclose(np.sum(2.0 ** -tree.lengths), 1.0)  # Kraft equality: a full binary tree
    p = counts / counts.sum()
    expected_len = float(np.sum(p * tree.lengths))
    entropy = float(-np.sum(p * np.log2(p)))
    assert entropy <= expected_len < entropy + 1
    assert np.all(tree.points[:, 0] == len(counts) - 2)  # every path starts at the root
    assert tree.points.max() <= len(counts) - 2


def test_huffman_expected_length_equals_gensims():
    from gensim.models.word2vec import Word2Vec
    rng = np.random.default_rng(1)
    counts = np.sort(rng.integers(1, 5000, 200))[::-1]
    words = [f"w{i}" for i in range(len(counts))]
    model = Word2Vec(vector_size=4, min_count=1, hs=1, negative=0)
    model.build_vocab_from_freq(dict(zip(words, counts.tolist())))
    gensim_len = np.array([len(model.wv.get_vecattr(w, "code")) for w in words])
    tree = build_huffman(counts)
    assert np.sum(counts * gensim_len) == np.sum(counts * tree.lengths)


def _batches(architecture, seed=0, shuffle=False):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 20, 3000).astype(np.int32)
    corpus = wd.Corpus(ids, np.repeat(np.arange(30), 100).astype(np.int32), 3300)
    counts = np.bincount(ids, minlength=20) + 1
    return EpochBatches(corpus, wd.keep_probabilities(counts, 1e-2),
                        wd.AliasSampler(wd.noise_distribution(counts)), architecture=architecture,
                        window=3, negative=4, batch_size=64, steps=8, seed=seed, shuffle=shuffle)


@pytest.mark.parametrize("architecture", ["sg", "cbow"])
def test_epoch_batches_are_deterministic_and_cover_the_corpus(architecture):
    a = list(_batches(architecture).epoch(0, 2, 0.025, 1e-4))
    b = list(_batches(architecture).epoch(0, 2, 0.025, 1e-4))
    c = list(_batches(architecture, seed=1).epoch(0, 2, 0.025, 1e-4))
    assert all(np.array_equal(x[0]["targets"], y[0]["targets"]) for x, y in zip(a, b))
    assert not np.array_equal(a[0][0]["negatives"], c[0][0]["negatives"])
    assert sum(words for _, words in a) == 3300
    chunk = a[0][0]
    assert chunk["targets"].shape == (8, 64) and chunk["negatives"].shape == (8, 64, 4)
    if architecture == "cbow":
        assert chunk["inputs"].shape == (8, 64, 6)
    lrs = np.concatenate([ch["lr"] for ch, _ in a])
    assert lrs[0] <= 0.025 and np.all(np.diff(lrs) <= 1e-9) and lrs[-1] > (0.025 + 1e-4) / 2 - 1e-3
    assert a[-1][0]["weights"].min() == 0.0  # the last chunk is padded with zero weights


def test_shuffled_chunks_hold_the_same_examples_in_another_order():
    plain = list(_batches("cbow").epoch(0, 1, 0.025, 1e-4))
    mixed = list(_batches("cbow", shuffle=True).epoch(0, 1, 0.025, 1e-4))
    p, m = plain[0][0], mixed[0][0]
    assert not np.array_equal(p["targets"], m["targets"])
    def examples(c):
        return sorted(zip(c["targets"].ravel().tolist(), map(tuple, c["inputs"].reshape(-1, 6).tolist())))
    assert examples(p) == examples(m)
