"""Parity with Hugging Face's GPT2LMHeadModel (PyTorch), built offline from small random
configs: logits to 1e-5 in float32, greedy generation token for token, export round trips,
import-hf / export-hf workdirs read back by from_pretrained and AutoTokenizer, bad input."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from llm_jax.interop import gpt2 as gpt2_interop  # noqa: E402

V, T, EOS = 211, 20, 7
# Every GPT2Config field that shapes the model, set (GPT2Config()'s defaults are 124M-sized).
SHAPE = dict(vocab_size=V, n_positions=64, n_embd=48, n_layer=3, n_head=4, n_inner=None,
             activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
             layer_norm_epsilon=1e-5, initializer_range=0.2, scale_attn_weights=True,
             scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
             add_cross_attention=False, tie_word_embeddings=True, bos_token_id=EOS,
             eos_token_id=EOS, use_cache=True)
VARIANTS = {
    "gpt2": {},
    # an untied head, exact GELU and an MLP that is not 4x wide
    "untied_gelu_inner": dict(tie_word_embeddings=False, activation_function="gelu", n_inner=80),
    # reordered, upcast attention: the same function (eager attention is what runs it)
    "reorder_upcast": dict(reorder_and_upcast_attn=True, activation_function="relu"),
}


def hf_model(vocab_size=V, **changes):
    """A small GPT2LMHeadModel with every tensor random (LayerNorms and biases too, so a mapping
    that swapped two of them would show)."""
    torch.manual_seed(0)
    changes = {**SHAPE, "vocab_size": vocab_size, **changes}
    if changes["reorder_and_upcast_attn"]:
        changes["attn_implementation"] = "eager"  # the only attention that reorders
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**changes))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def hf_logits(model, ids, mask=None):
    with torch.no_grad():
        mask = None if mask is None else torch.tensor(mask.astype(np.int64))
        return model(input_ids=torch.tensor(ids), attention_mask=mask).logits.numpy()


def ids_batch(vocab_size=V):
    return np.random.default_rng(1).integers(0, vocab_size, (3, T))


def ours_logits(model, ids):
    return np.asarray(model(jnp.asarray(ids)))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_imported_model_matches_transformers(variant, tmp_path):
    hf = hf_model(**VARIANTS[variant])
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours, cfg = gpt2_interop.load_hf(str(tmp_path / "hf"))
    assert (cfg.num_layers, cfg.embed_dim, cfg.num_heads, cfg.vocab_size, cfg.max_len) == (
        3, 48, 4, V, 64)
    assert cfg.tie_embeddings == (variant != "untied_gelu_inner")
    ids = ids_batch()
    np.testing.assert_allclose(ours_logits(ours, ids), hf_logits(hf, ids), atol=1e-5, rtol=1e-5)
    # one right-padded row: what HF gives with its attention mask at the real positions is
    # what our causal model gives there (padding comes after, so nothing real attends to it)
    lengths = np.array([T, 13, 6])
    mask = np.arange(T)[None] < lengths[:, None]
    padded = np.where(mask, ids, EOS)
    want = hf_logits(hf, padded, mask)
    np.testing.assert_allclose(ours_logits(ours, padded)[mask], want[mask], atol=1e-5, rtol=1e-5)


def test_greedy_generation_matches_hf_generate(tmp_path):
    from llm_jax.tasks.lm_decoding import generate_tokens

    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours, _ = gpt2_interop.load_hf(str(tmp_path / "hf"))
    rng = np.random.default_rng(3)
    prompts = [rng.integers(8, V, n).tolist() for n in (1, 4, 9, 17)]
    stop = 77  # a token two of the greedy continuations reach: stopping at eos is tested too
    want = []
    for p in prompts:
        with torch.no_grad():
            out = hf.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=int),
                              do_sample=False, max_new_tokens=20, eos_token_id=stop,
                              pad_token_id=stop)
        want.append(out[0].tolist())
    assert sum(len(w) < len(p) + 20 for w, p in zip(want, prompts)) == 2
    # one batch of prompts of different lengths (KV cache), each row as HF gives it alone
    assert generate_tokens(ours, prompts, 20, temperature=0.0, eos_id=stop) == want


def test_export_round_trip(tmp_path):
    """load_hf -> params_to_hf -> from_pretrained: the same tensors and the same logits."""
    from safetensors.numpy import load_file

    from llm_jax.interop.hf_files import write_dir

    for variant in ("gpt2", "untied_gelu_inner"):
        hf = hf_model(**VARIANTS[variant])
        hf.save_pretrained(tmp_path / variant, safe_serialization=True)
        ours, cfg = gpt2_interop.load_hf(str(tmp_path / variant))
        tensors = gpt2_interop.params_to_hf(nnx.to_pure_dict(nnx.state(ours, nnx.Param)), cfg)
        original = load_file(str(tmp_path / variant / "model.safetensors"))
        assert set(tensors) == {n for n in original if n != "lm_head.weight" or variant != "gpt2"}
        for name, value in tensors.items():
            np.testing.assert_array_equal(value, original[name], err_msg=name)
        config = gpt2_interop.hf_config(cfg, EOS)
        write_dir(str(tmp_path / f"{variant}_out"), config, tensors)
        back = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / f"{variant}_out"))
        ids = ids_batch()
        np.testing.assert_allclose(hf_logits(back.eval(), ids), hf_logits(hf, ids), atol=1e-6)
        assert back.config.tie_word_embeddings == (variant == "gpt2")


def test_old_and_bare_checkpoints_load(tmp_path):
    """A bare GPT2Model (OpenAI's `gpt2` repository: no "transformer." prefix) with the causal
    mask buffers old checkpoints carry, and a stored tied lm_head.weight."""
    from safetensors.numpy import load_file, save_file

    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    want, _ = gpt2_interop.load_hf(str(tmp_path / "hf"))
    weights = tmp_path / "hf" / "model.safetensors"
    tensors = load_file(str(weights))
    bare = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    causal = np.tril(np.ones((64, 64), np.float32))[None, None]
    for i in range(3):
        bare[f"h.{i}.attn.bias"] = causal
        bare[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    save_file(bare, str(weights))
    got, _ = gpt2_interop.load_hf(str(tmp_path / "hf"))
    ids = ids_batch()
    np.testing.assert_array_equal(ours_logits(got, ids), ours_logits(want, ids))
    save_file({**tensors, "lm_head.weight": tensors["transformer.wte.weight"]}, str(weights))
    gpt2_interop.load_hf(str(tmp_path / "hf"))


@pytest.mark.parametrize("vocabulary", ["fitted", "gpt2_files"])
def test_import_hf_and_export_hf_workdirs(vocabulary, tmp_path):
    """import-hf makes a causal-LM workdir that llm_jax.load reads; export-hf of it is a
    directory that from_pretrained and AutoTokenizer read back to the same logits and ids.

    "fitted": a 300-token BPE learnt from made-up text. "gpt2_files": OpenAI's 50,257 tokens in
    a tiny-width model whose embedding is padded to 50,304 rows, as configs/gpt2.py pads it:
    the export keeps all 50,304 (config.json says vocab_size=50304)."""
    import llm_jax
    from llm_jax.data import GPT2BPETokenizer
    from llm_jax.data.hf_tokenizer_files import write_hf_tokenizer
    from llm_jax.training import commands

    if vocabulary == "fitted":
        rng = np.random.default_rng(0)
        words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 7))) for _ in range(60)]
        text = [" ".join(rng.choice(words, 12)) + " ." for _ in range(400)]
        tokenizer = GPT2BPETokenizer.fit(text, vocab_size=300, min_frequency=1)
        rows, texts = 320, [text[0], "abc defg\n\nhij <|endoftext|> ba"]
    else:
        from llm_jax.data.gpt2_tokenizer import read_gpt2_tokenizer
        from tests.conftest import require_real_data

        root = require_real_data("tokenizers/gpt2/encoder.json", "tokenizers/gpt2/vocab.bpe")
        tokenizer = read_gpt2_tokenizer(root / "tokenizers/gpt2/encoder.json",
                                        root / "tokenizers/gpt2/vocab.bpe")
        rows, texts = 50304, ["Hello world, it's GPT-2.", " Café 🤗\n\n<|endoftext|>The end"]
    eos = tokenizer.eos_id
    hf = hf_model(rows, n_embd=16, n_layer=2, bos_token_id=eos, eos_token_id=eos)
    hf_dir = tmp_path / "hf"
    hf.save_pretrained(hf_dir, safe_serialization=True)
    write_hf_tokenizer(tokenizer, str(hf_dir))

    record = commands.import_hf(str(hf_dir), str(tmp_path / "run"))
    assert record["format"] == "gpt2"
    assert record["params"] == sum(p.numel() for p in hf.parameters())
    model, ours_tok, config = llm_jax.load(str(tmp_path / "run"))
    assert (config.task.name, config.data.tokenizer, config.model.vocab_size) == (
        "causal_lm", "gpt2_bpe", rows)
    ids = [ours_tok.encode(t) for t in texts]
    assert [i.tolist() for i in ids] == [tokenizer.encode(t).tolist() for t in texts]
    for row in ids:
        want = hf_logits(hf, row[None])
        np.testing.assert_allclose(ours_logits(model, row[None]), want, atol=1e-5, rtol=1e-5)

    out = commands.export_hf(str(tmp_path / "run"), str(tmp_path / "out"))
    assert (out["family"], out["architecture"]) == ("gpt2", "GPT2LMHeadModel")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == rows
    back = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
    back_tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert back_tok.eos_token_id == eos and len(back_tok) == tokenizer.vocab_size
    assert back_tok(texts)["input_ids"] == [i.tolist() for i in ids]
    for row in ids:
        np.testing.assert_allclose(hf_logits(back, row[None]), hf_logits(hf, row[None]),
                                   atol=1e-5, rtol=1e-5)


def test_bad_directories_get_one_line_naming_file_and_tensor(tmp_path):
    from safetensors.numpy import load_file, save_file

    from llm_jax.training import commands

    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    config_path, weights = tmp_path / "hf" / "config.json", tmp_path / "hf" / "model.safetensors"
    config = json.loads(config_path.read_text())
    tensors = load_file(str(weights))

    def fails(match, error=ValueError, changes=None):
        config_path.write_text(json.dumps({**config, **(changes or {})}))
        with pytest.raises(error, match=match) as info:
            gpt2_interop.load_hf(str(tmp_path / "hf"))
        assert "\n" not in str(info.value)
        config_path.write_text(json.dumps(config))

    fails(r"config.json: model_type='xlnet' is not 'gpt2'", changes={"model_type": "xlnet"})
    config_path.write_text(json.dumps({**config, "model_type": "xlnet"}))
    with pytest.raises(ValueError, match=r"hf/config.json: model_type='xlnet'; import-hf reads "
                                         r"marian, bert, roberta, albert, gpt2"):
        commands.import_hf(str(tmp_path / "hf"), str(tmp_path / "run"))
    fails(r"config.json: scale_attn_by_inverse_layer_idx=True is not supported",
          changes={"scale_attn_by_inverse_layer_idx": True})
    fails(r"config.json: activation_function='quick_gelu' is not one of",
          changes={"activation_function": "quick_gelu"})
    fails(r"config.json: layer_norm_epsilon=1e-06 is not supported",
          changes={"layer_norm_epsilon": 1e-6})
    fails(r"config.json: add_cross_attention=True", changes={"add_cross_attention": True})
    fails(r"config.json: resid_pdrop, embd_pdrop, attn_pdrop differ \(0.1, 0.1, 0.0\)",
          changes={"attn_pdrop": 0.0})

    name = "transformer.h.1.attn.c_attn.weight"
    save_file({k: v for k, v in tensors.items() if k != name}, str(weights))
    fails(rf"model.safetensors: tensor '{name}' is missing")
    save_file({**tensors, name: tensors[name][:, :96].copy()}, str(weights))
    fails(rf"model.safetensors: tensor '{name}' has shape \(48, 96\), but config.json implies "
          r"\(48, 144\)")
    save_file({**tensors, "score.weight": np.zeros((2, 48), np.float32)}, str(weights))
    fails(r"model.safetensors: 1 tensors have no place in the model, e.g. \['score.weight'\]")
    save_file({**tensors, "lm_head.weight": tensors["transformer.wte.weight"] + 1}, str(weights))
    fails(r"model.safetensors: lm_head.weight differs from transformer.wte.weight")
    weights.unlink()
    fails("has no model.safetensors", FileNotFoundError)


def test_export_refuses_what_gpt2_cannot_hold(tmp_path):
    from llm_jax.data import CharTokenizer
    from llm_jax.models import gpt
    from llm_jax.training.config_schema import default_config
    from llm_jax.training.hf_export import export_hf

    c = default_config("gpt", "causal_lm")
    c.model.update(vocab_size=5, max_len=8, num_layers=1, num_heads=2, embed_dim=8)
    model = nnx.eval_shape(lambda: gpt.GPT(c.model, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="data.tokenizer='gpt2_bpe'; this workdir's tokenizer is "
                                         "'char'"):
        export_hf(model, CharTokenizer(list("abcde")), c, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    for field, value, match in (("variant", "gpt1", "GPT-2 needs model.variant='gpt2'"),
                                ("activation", "swiglu", "model.activation='swiglu' has no"),
                                ("attention_pattern", "alternating", "attends densely"),
                                ("head_dim", 8, "model.head_dim=8; GPT-2's heads are")):
        if field in c.model:  # attention_pattern, head_dim: GPT-3's fields
            bad = c.model.copy_and_resolve_references()
            bad.unlock()
            bad[field] = value
            with pytest.raises(ValueError, match=match):
                gpt2_interop.hf_config(bad)
