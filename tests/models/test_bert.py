"""The BERT-family encoder: published sizes, padding, positions, shared layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llm_jax.models import bert


def count(cfg):
    model = nnx.eval_shape(lambda: bert.Bert(cfg, rngs=nnx.Rngs(0)))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def hf_count(size):
    """Parameters of the same size's Hugging Face pre-training model, built on the meta
    device (no memory), with tied weights counted once."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    layers, d, heads, mlp, emb = bert.SIZES[size]
    shape = dict(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                 intermediate_size=mlp)
    if size.startswith("roberta"):
        cfg = transformers.RobertaConfig(vocab_size=50265, max_position_embeddings=514,
                                         type_vocab_size=1, **shape)
        cls = transformers.RobertaForMaskedLM
    elif size.startswith("albert"):
        cfg = transformers.AlbertConfig(vocab_size=30000, embedding_size=emb,
                                        num_hidden_groups=1, inner_group_num=1, **shape)
        cls = transformers.AlbertForPreTraining
    else:
        cfg = transformers.BertConfig(vocab_size=30522, **shape)
        cls = transformers.BertForPreTraining
    with torch.device("meta"):
        model = cls(cfg)
    return sum(p.numel() for p in model.parameters())  # parameters() yields a tied one once


@pytest.mark.parametrize("size", sorted(bert.SIZES))
def test_sizes_have_the_parameters_of_the_hugging_face_models(size):
    assert count(bert.size_config(size)) == hf_count(size)


def test_sizes_match_the_papers():
    # BERT: "110M" and "340M"; RoBERTa base 125M; ALBERT, Table 1: 12M, 18M, 60M and 235M.
    # ALBERT-xxlarge counts 223M here and in Hugging Face's AlbertForPreTraining (the
    # test above); the paper's 235M is not reproduced by its own Table 1 shape.
    millions = {s: count(bert.size_config(s)) / 1e6 for s in bert.SIZES}
    for size, paper, tol in (("bert_base", 110, 0.01), ("bert_large", 340, 0.02),
                             ("roberta_base", 125, 0.01), ("albert_base", 12, 0.02),
                             ("albert_large", 18, 0.01), ("albert_xlarge", 60, 0.02),
                             ("albert_xxlarge", 235, 0.06)):
        assert millions[size] == pytest.approx(paper, rel=tol), size
    assert millions["bert_mini"] == pytest.approx(11.3, abs=0.1)  # Turc et al.: 11.3M


def tiny(**overrides):
    c = bert.default_config()
    c.update({**dict(vocab_size=50, max_len=16, num_layers=2, num_heads=2, embed_dim=16,
                     mlp_dim=32, dropout_rate=0.0, attention_dropout=0.0), **overrides})
    return c


def test_padding_does_not_change_real_tokens():
    model = bert.Bert(tiny(), rngs=nnx.Rngs(0))
    ids = jnp.array([[5, 6, 7, 8, 9, 0, 0, 0]])
    mask = jnp.arange(8)[None] < 5
    other = ids.at[0, 5:].set(jnp.array([11, 12, 13]))  # other content in the padded slots
    a = model(ids, None, mask)
    b = model(other, None, mask)
    np.testing.assert_allclose(a["hidden"][0, :5], b["hidden"][0, :5], atol=1e-6)
    short = model(ids[:, :5], None, mask[:, :5])
    np.testing.assert_allclose(a["mlm_logits"][0, :5], short["mlm_logits"][0], atol=1e-5)
    assert a["pooled"].shape == (1, 16) and a["sentence_logits"].shape == (1, 2)


def test_roberta_positions_count_real_tokens_past_the_pad_index():
    model = bert.Bert(tiny(position_ids="cumsum_mask", pad_position=1),
                      rngs=nnx.Rngs(0))
    mask = jnp.array([[True, True, True, False], [True, True, False, False]])
    np.testing.assert_array_equal(model._position_ids(mask), [[2, 3, 4, 1], [2, 3, 1, 1]])


def test_shared_layers_and_factorised_embeddings():
    cfg = tiny(shared_layers=True, embedding_dim=8, sentence_head="sop", num_layers=4)
    model = bert.Bert(cfg, rngs=nnx.Rngs(0))
    shapes = jax.tree.map(lambda x: x.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    assert "block" in shapes["encoder"] and "blocks" not in shapes["encoder"]
    assert shapes["encoder"]["block"]["attn"]["qkv"] == (16, 3, 2, 8)  # no layer axis
    assert shapes["embed"]["table"] == (50, 8) and shapes["embed_proj"]["kernel"] == (8, 16)
    assert shapes["mlm_dense"]["kernel"] == (16, 8)
    ids = jnp.arange(6)[None] + 3
    h, states = model.encode(ids, None, None, all_layers=True)
    assert states.shape == (5, 1, 6, 16)
    np.testing.assert_allclose(states[-1], h)
    # the loop and the scan run the same shared layer
    loop = bert.Bert(tiny(shared_layers=True, embedding_dim=8, sentence_head="sop",
                          num_layers=4, scan_layers=False), rngs=nnx.Rngs(0))
    np.testing.assert_allclose(loop.encode(ids), h, atol=1e-5)


def test_dropout_is_a_function_of_the_key():
    model = bert.Bert(tiny(dropout_rate=0.3, attention_dropout=0.3), rngs=nnx.Rngs(0))
    ids = jnp.arange(8)[None] + 3
    a = model(ids, dropout_key=jax.random.key(1))["mlm_logits"]
    b = model(ids, dropout_key=jax.random.key(1))["mlm_logits"]
    c = model(ids, dropout_key=jax.random.key(2))["mlm_logits"]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a, model(ids)["mlm_logits"])


@pytest.mark.parametrize("field,value,match", [
    ("position_ids", "rotary", "model.position_ids='rotary'"),
    ("sentence_head", "mlm", "model.sentence_head='mlm'"),
    ("activation", "tanh", "model.activation='tanh'"),
])
def test_bad_config_names_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        bert.Bert(tiny(**{field: value}), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="reads the pooled"):
        bert.Bert(tiny(pooler=False), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unknown BERT-family size 'bert_huge'"):
        bert.size_config("bert_huge")
