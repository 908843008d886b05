import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.decoding import filter_logits
from llm_jax.models import build_model, default_model_config
from llm_jax.tasks.lm_decoding import generate


@functools.cache
def model(variant="gpt2"):
    cfg = default_model_config("gpt")
    # A larger init makes a random model's greedy output vary, so the comparison means something.
    cfg.update(vocab_size=41, max_len=32, num_layers=2, num_heads=2, embed_dim=16,
               variant=variant, init_std=0.5)
    return build_model(cfg, rngs=nnx.Rngs(3))


@pytest.mark.parametrize("variant", ["gpt1", "gpt2"])
def test_greedy_with_cache_equals_without(variant):
    m = model(variant)
    prompt = np.random.RandomState(0).randint(0, 41, (3, 4))
    cached = generate(m, prompt, 24, temperature=0, use_cache=True)
    full = generate(m, prompt, 24, temperature=0, use_cache=False)
    np.testing.assert_array_equal(cached, full)
    np.testing.assert_array_equal(cached[:, :4], prompt)
    assert len(np.unique(np.asarray(cached[:, 4:]))) > 3  # not a degenerate repetition


def test_greedy_matches_step_by_step_argmax():
    m = model()
    forward = jax.jit(lambda tokens: m(tokens))  # one fixed shape: causal, so padding is inert
    seq = np.zeros((1, 9), np.int32)
    seq[0, :3] = [5, 9, 2]
    for t in range(3, 9):
        seq[0, t] = int(jnp.argmax(forward(jnp.asarray(seq))[0, t - 1]))
    np.testing.assert_array_equal(generate(m, seq[:, :3], 6, temperature=0), seq)


def test_sliding_window_past_max_len():
    m = model()
    out = generate(m, np.zeros((2, 3), np.int32), 40, temperature=0)  # 43 > max_len 32
    assert out.shape == (2, 43)
    with pytest.raises(ValueError, match="max_len"):
        generate(m, np.zeros((2, 3), np.int32), 40, use_cache=True)


def test_sampling_is_seeded_and_batched():
    m = model()
    p = np.zeros((4, 2), np.int32)
    a = generate(m, p, 10, key=jax.random.key(0), temperature=1.0)
    b = generate(m, p, 10, key=jax.random.key(0), temperature=1.0)
    c = generate(m, p, 10, key=jax.random.key(1), temperature=1.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({tuple(r) for r in np.asarray(a)}) > 1  # rows sample independently


def test_top_k_and_top_p_filters():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda out: np.asarray(out[0] > jnp.finfo(jnp.float32).min)  # noqa: E731
    np.testing.assert_array_equal(kept(filter_logits(logits, top_k=2)), [1, 1, 0, 0])
    np.testing.assert_array_equal(kept(filter_logits(logits, top_p=0.7)), [1, 1, 0, 0])
    np.testing.assert_array_equal(kept(filter_logits(logits, top_p=0.85)), [1, 1, 1, 0])
    np.testing.assert_array_equal(kept(filter_logits(logits, top_p=0.1)), [1, 0, 0, 0])
    # top-k sampling never draws outside the k best
    m = model()
    out = generate(m, np.zeros((8, 1), np.int32), 1, key=jax.random.key(0), top_k=1,
                   temperature=5.0)
    greedy = generate(m, np.zeros((8, 1), np.int32), 1, temperature=0)
    np.testing.assert_array_equal(out, greedy)


def test_bad_arguments_are_named():
    m = model()
    with pytest.raises(ValueError, match="top_p"):
        generate(m, np.zeros((1, 2), np.int32), 3, top_p=0.0)
    with pytest.raises(ValueError, match="prompt"):
        generate(m, np.zeros((1, 0), np.int32), 3)
