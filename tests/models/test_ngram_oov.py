"""Out-of-vocabulary words in n-gram scoring: counted, and perplexity both with and without them.

A tiny corpus with hand-computed probabilities. Training text "a b / b a / a a b" gives the
vocabulary {a, b, <eos>, <unk>} (V = 4, <unk> never seen); the test text "a c / d b <unk>" has
two OOVs (c, d) and one literal <unk>, which is a word of the vocabulary, not an OOV.
"""

import math

import numpy as np
import pytest

from llm_jax.models.ngram import NGramLM
from llm_jax.tasks.ngram_lm import NGramLMTask
from llm_jax.training.commands import evaluate_workdir, train
from tests.conftest import load_config

TRAIN, VALID, TEST = "a b\nb a\na a b\n", "b\n", "a c\nd b <unk>\n"
# stream: a, c->unk, eos, d->unk, b, <unk>, eos
OOV = [False, True, False, True, False, False, False]


@pytest.fixture
def tiny_corpus(tmp_data_dir):
    (tmp_data_dir / "ptb").mkdir()
    for split, text in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        (tmp_data_dir / "ptb" / f"ptb.{split}.txt").write_text(text)
    return tmp_data_dir


def _config(variant):
    c = load_config("ngram", variant)
    c.task.update(k=1.0, num_samples=0)
    return c


def test_task_marks_oovs_but_not_a_literal_unk(tiny_corpus, tmp_path):
    task = NGramLMTask(_config("add_k1"), str(tmp_path / "run"))
    ids, oov = task.tokens_and_oov("test")
    tok = task.tokenizer
    assert tok.decode(ids).split() == ["a", "<unk>", "<unk>", "b", "<unk>"]
    assert (ids == tok.unk_id).sum() == 3
    assert oov.tolist() == OOV
    assert not task.tokens_and_oov("valid")[1].any()


def test_unigram_scores_match_a_hand_computation(tiny_corpus, tmp_path):
    # add-one unigram over 10 training tokens (a 4, b 3, eos 3, unk 0), V = 4:
    # p(a) = 5/14, p(b) = p(eos) = 4/14, p(unk) = 1/14.
    summary = train(_config("add_k1"), str(tmp_path / "run"))
    assert summary["test/tokens"] == 7 and summary["test/oov"] == 2
    # every token: a unk eos unk b unk eos -> product 5*1*4*1*4*1*4 / 14^7
    assert summary["test/perplexity"] == pytest.approx(14 / 320 ** (1 / 7), rel=1e-12)
    # SRILM: the two OOVs out of the sum and the count: a eos b unk eos -> 5*4*4*1*4 / 14^5
    assert summary["test/perplexity_no_oov"] == pytest.approx(14 / 320 ** (1 / 5), rel=1e-12)
    assert summary["eval/oov"] == 0  # valid "b <eos>": 4/14 each, with or without OOVs
    assert summary["eval/perplexity"] == pytest.approx(3.5, rel=1e-12)
    assert summary["eval/perplexity_no_oov"] == pytest.approx(3.5, rel=1e-12)
    back = evaluate_workdir(str(tmp_path / "run"), "test")
    assert back["eval/oov"] == 2
    assert back["eval/perplexity_no_oov"] == pytest.approx(summary["test/perplexity_no_oov"])


def test_bigram_keeps_unk_as_the_history_after_an_oov(tiny_corpus, tmp_path):
    # add-one bigram, p(w | h) = (c(h w) + 1) / (c(h) + 4); c(<s>) = 3, c(a) = 4, c(b) = 3,
    # c(<unk>) = 0. Test: a|<s> 3/7, c->unk|a 1/8, eos|unk 1/4, d->unk|<s> 1/7, b|unk 1/4,
    # <unk>|b 1/7, eos|unk 1/4.
    summary = train(_config("add_k2"), str(tmp_path / "run"))
    every = [3 / 7, 1 / 8, 1 / 4, 1 / 7, 1 / 4, 1 / 7, 1 / 4]
    kept = [p for p, out in zip(every, OOV) if not out]
    ppl = lambda ps: math.exp(-sum(map(math.log, ps)) / len(ps))  # noqa: E731
    assert summary["test/perplexity"] == pytest.approx(ppl(every), rel=1e-12)
    assert summary["test/perplexity_no_oov"] == pytest.approx(ppl(kept), rel=1e-12)


def test_model_perplexity_exclude_mask():
    lm = NGramLM.fit(np.array([0, 1, 2, 0, 2]), vocab_size=3, eos_id=2, order=1,
                     smoothing="add_k", k=1.0)
    # add-one unigram over 5 tokens (0: 2, 1: 1, 2: 2), V = 3: p = (3/8, 2/8, 3/8)
    test = np.array([0, 1, 2])
    np.testing.assert_allclose(np.exp(lm.stream_logprobs(test)), [3 / 8, 2 / 8, 3 / 8],
                               rtol=1e-12)
    assert lm.perplexity(test) == pytest.approx((512 / 18) ** (1 / 3), rel=1e-12)
    # token 1 out of the sum and the count: (3/8 * 3/8) ** -1/2
    assert lm.perplexity(test, exclude=[False, True, False]) == pytest.approx(8 / 3, rel=1e-12)
    with pytest.raises(ValueError, match=r"exclude: expected a bool mask of shape \(3,\)"):
        lm.perplexity(test, exclude=[True])


@pytest.mark.real_data("ptb")
def test_ptb_has_no_oovs(real_data_dir, tmp_path):
    # PTB's text already says <unk>; every test word is in the training vocabulary, so the
    # published perplexity (KN5 test 141.19) is the same under both conventions.
    task = NGramLMTask(load_config("ngram", "kn2"), str(tmp_path / "run"))
    ids, oov = task.tokens_and_oov("test")
    assert (ids == task.tokenizer.unk_id).sum() > 0
    assert oov.sum() == 0
