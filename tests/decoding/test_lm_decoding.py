import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.decoding import filter_logits
from llm_jax.tasks.lm_decoding import generate_tokens, lm_decoder
from tests.decoding.helpers import tiny_gpt, tiny_rnn

PROMPTS = [[3, 14, 15, 9, 2, 6], [5], [35, 8, 9]]
MODELS = {"gpt": tiny_gpt, "lstm": tiny_rnn}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_batch_of_prompts_equals_each_alone(name, temperature):
    m = MODELS[name]()
    keys = jax.random.split(jax.random.key(5), len(PROMPTS))
    kw = dict(temperature=temperature, top_p=0.9)
    batch = generate_tokens(m, PROMPTS, 12, key=keys, **kw)
    for i, p in enumerate(PROMPTS):
        assert batch[i][:len(p)] == p and len(batch[i]) == len(p) + 12
        assert generate_tokens(m, [p], 12, key=keys[i:i + 1], **kw) == [batch[i]]


def test_eos_ends_a_row_and_the_rest_go_on():
    m = tiny_gpt()
    free = generate_tokens(m, PROMPTS, 10, temperature=0.0)
    eos = free[0][len(PROMPTS[0]) + 2]  # the third token row 0 generates
    out = generate_tokens(m, PROMPTS, 10, temperature=0.0, eos_id=eos)
    for row, p, full in zip(out, PROMPTS, free):
        generated = full[len(p):]
        cut = generated.index(eos) + 1 if eos in generated else len(generated)
        assert row == p + generated[:cut]
    assert len(out[0]) == len(PROMPTS[0]) + 3


def reference_window(m, prompt, new, *, key=None, temperature=0.0, top_k=0):
    """nanoGPT's loop: rerun the model on the last max_len tokens, pick the next one."""
    seq = list(prompt)
    forward = jax.jit(m)  # one shape: the window right-padded to max_len, inert under causality
    for _ in range(new):
        ctx = seq[-m.max_len:]
        logits = np.asarray(forward(jnp.asarray([ctx + [0] * (m.max_len - len(ctx))]))[0, len(ctx) - 1])
        if temperature == 0.0:
            seq.append(int(np.argmax(logits)))
        else:
            filtered = filter_logits(jnp.asarray(logits[None]) / temperature, top_k=top_k)
            pos_key = jax.random.fold_in(key, len(seq))  # decode's key for this position
            seq.append(int(jax.random.categorical(pos_key, filtered[0])))
    return seq


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_sliding_window_past_max_len_matches_step_by_step(temperature):
    m = tiny_gpt(max_len=16)
    prompts = [[1, 2, 3, 4, 5], list(range(20, 40))]  # the second is longer than max_len
    keys = jax.random.split(jax.random.key(2), 2)
    out = generate_tokens(m, prompts, 14, key=keys, temperature=temperature, top_k=5)
    for row, p, k in zip(out, prompts, keys):
        assert row == reference_window(m, p, 14, key=k, temperature=temperature, top_k=5)


def test_sliding_window_equals_kv_cache_while_it_fits():
    m = tiny_gpt()
    a = generate_tokens(m, PROMPTS, 20, temperature=0.0, use_cache=True)
    b = generate_tokens(m, PROMPTS, 20, temperature=0.0, use_cache=False)
    assert a == b


def test_decoder_choice_and_errors_are_named():
    m = tiny_gpt(max_len=16)
    assert set(lm_decoder(m, 2, 16).cache) == {"k", "v", "index"}
    assert set(lm_decoder(m, 2, 17).cache) == {"ctx", "count"}
    with pytest.raises(ValueError, match="max_len"):
        generate_tokens(m, [[1, 2]], 20, use_cache=True)
    with pytest.raises(ValueError, match="non-empty"):
        generate_tokens(m, [[1], []], 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_tokens(m, [[1]], 0)
    with pytest.raises(TypeError, match="gpt"):
        lm_decoder(object(), 1, 4)
