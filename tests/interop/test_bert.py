"""Parity with Hugging Face's BertForPreTraining, RobertaForMaskedLM and AlbertForPreTraining
(PyTorch), built offline from small random configs."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402

from llm_jax.interop import bert as bert_interop  # noqa: E402

V, T, PAD = 97, 12, 1
SHAPE = dict(vocab_size=V, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
             intermediate_size=48, max_position_embeddings=40, type_vocab_size=2,
             hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.2,
             pad_token_id=PAD)


def hf_model(family, vocab_size=V, pad_id=PAD):
    """A small model with every tensor random (LayerNorms and biases too, so a mapping that
    swapped two of them would show)."""
    torch.manual_seed(0)
    shape = {**SHAPE, "vocab_size": vocab_size, "pad_token_id": pad_id}
    if family == "bert":
        model = transformers.BertForPreTraining(transformers.BertConfig(**shape))
    elif family == "roberta":
        cfg = transformers.RobertaConfig(**{**shape, "type_vocab_size": 1,
                                            "max_position_embeddings": T + PAD + 1},
                                         layer_norm_eps=1e-5)
        model = transformers.RobertaForMaskedLM(cfg)
    else:
        # AlbertConfig()'s defaults are xxlarge-sized: every field is set
        cfg = transformers.AlbertConfig(
            **shape, embedding_size=16, num_hidden_groups=1, inner_group_num=1,
            hidden_act="gelu_new", layer_norm_eps=1e-12, classifier_dropout_prob=0.1,
            bos_token_id=2, eos_token_id=3, position_embedding_type="absolute")
        model = transformers.AlbertForPreTraining(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def batch(family):
    """Three sequences, two segments each, the last two right-padded."""
    rng = np.random.default_rng(1)
    ids = rng.integers(3, V, (3, T))
    lengths = np.array([T, 8, 5])
    mask = np.arange(T)[None] < lengths[:, None]
    ids[~mask] = PAD
    segments = (np.arange(T)[None] >= (lengths // 2)[:, None]) & mask
    if family == "roberta":
        segments[:] = False  # one segment type
    return ids, segments.astype(np.int64), mask


def hf_outputs(model, ids, segments, mask):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(segments),
                    attention_mask=torch.tensor(mask.astype(np.int64)), output_hidden_states=True)
    logits = out.logits if hasattr(out, "logits") else out.prediction_logits
    sentence = getattr(out, "seq_relationship_logits", None)
    if sentence is None:
        sentence = getattr(out, "sop_logits", None)
    return ([h.numpy() for h in out.hidden_states], logits.numpy(),
            None if sentence is None else sentence.numpy())


@pytest.mark.parametrize("family", ["bert", "roberta", "albert"])
def test_imported_model_matches_transformers(family, tmp_path):
    hf = hf_model(family)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours, cfg, got_family = bert_interop.load_hf(str(tmp_path / "hf"))
    assert got_family == family
    assert cfg.shared_layers == (family == "albert")
    assert cfg.sentence_head == {"bert": "nsp", "roberta": "", "albert": "sop"}[family]
    ids, segments, mask = batch(family)
    want_states, want_logits, want_sentence = hf_outputs(hf, ids, segments, mask)
    h, states = ours.encode(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask),
                            all_layers=True)
    assert len(states) == len(want_states) == 4
    for layer, (got, want) in enumerate(zip(np.asarray(states), want_states)):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5, err_msg=f"layer {layer}")
    out = ours(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(out["mlm_logits"]), want_logits, atol=1e-5, rtol=1e-5)
    if want_sentence is None:
        assert "sentence_logits" not in out
    else:
        np.testing.assert_allclose(np.asarray(out["sentence_logits"]), want_sentence, atol=1e-5,
                                   rtol=1e-5)


@pytest.mark.parametrize("family", ["bert", "roberta", "albert"])
def test_export_round_trip(family, tmp_path):
    """import -> export -> from_pretrained gives the same tensors and the same logits."""
    from safetensors.numpy import load_file

    from llm_jax.interop.hf_files import write_dir

    hf = hf_model(family)
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours, cfg, _ = bert_interop.load_hf(str(tmp_path / "hf"))
    from flax import nnx

    params = nnx.to_pure_dict(nnx.state(ours, nnx.Param))
    got_family, tensors = bert_interop.params_to_hf(params, cfg)
    assert got_family == family
    config = bert_interop.hf_config(cfg, {"pad": PAD})
    write_dir(str(tmp_path / "out"), config, tensors)
    original = load_file(str(tmp_path / "hf" / "model.safetensors"))
    for name, value in tensors.items():
        np.testing.assert_array_equal(value, original[name], err_msg=name)
    kept = {n for n in original if not n.endswith(bert_interop.DERIVED)}
    assert kept == set(tensors)
    cls = getattr(transformers, config["architectures"][0])
    back = cls.from_pretrained(str(tmp_path / "out")).eval()
    ids, segments, mask = batch(family)
    _, want, want_sentence = hf_outputs(hf, ids, segments, mask)
    _, got, got_sentence = hf_outputs(back, ids, segments, mask)
    np.testing.assert_allclose(got, want, atol=1e-6)
    if want_sentence is not None:
        np.testing.assert_allclose(got_sentence, want_sentence, atol=1e-6)


def test_bad_directories_get_one_line_naming_file_and_tensor(tmp_path):
    from safetensors.numpy import load_file, save_file

    hf = hf_model("bert")
    hf.save_pretrained(tmp_path / "hf", safe_serialization=True)
    config_path, weights = tmp_path / "hf" / "config.json", tmp_path / "hf" / "model.safetensors"
    config = json.loads(config_path.read_text())
    tensors = load_file(str(weights))

    config_path.write_text(json.dumps({**config, "model_type": "xlnet"}))
    with pytest.raises(ValueError, match=r"config.json: model_type='xlnet' is not one of"):
        bert_interop.load_hf(str(tmp_path / "hf"))
    config_path.write_text(json.dumps(config))

    name = "bert.encoder.layer.1.attention.self.key.weight"
    save_file({k: v for k, v in tensors.items() if k != name}, str(weights))
    with pytest.raises(ValueError, match=rf"model.safetensors: tensor '{name}' is missing"):
        bert_interop.load_hf(str(tmp_path / "hf"))

    save_file({**tensors, name: tensors[name][:, :16].copy()}, str(weights))
    with pytest.raises(ValueError, match=rf"tensor '{name}' has shape \(32, 16\), but "
                                         r"config.json implies \(32, 32\)"):
        bert_interop.load_hf(str(tmp_path / "hf"))

    weights.unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        bert_interop.load_hf(str(tmp_path / "hf"))


def fitted_tokenizer(family):
    """A small vocabulary of the family's kind, learnt from made-up text."""
    from llm_jax.data import AlbertSentencePieceTokenizer, RobertaBPETokenizer, WordPieceTokenizer

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), rng.integers(2, 7))) for _ in range(60)]
    text = [" ".join(rng.choice(words, 12)) + " ." for _ in range(400)]
    if family == "bert":
        return WordPieceTokenizer.fit(text, vocab_size=120, min_frequency=1)
    if family == "roberta":
        return RobertaBPETokenizer.fit(text, vocab_size=300, min_frequency=1)
    return AlbertSentencePieceTokenizer.fit("\n".join(text), vocab_size=100)


@pytest.mark.parametrize("family", ["bert", "roberta", "albert"])
def test_import_hf_and_export_hf_workdirs(family, tmp_path):
    """import-hf makes a workdir that llm_jax.load reads; export-hf of it is a directory that
    transformers' from_pretrained and AutoTokenizer read back to the same logits and ids."""
    import llm_jax
    from llm_jax.data.hf_tokenizer_files import write_hf_tokenizer
    from llm_jax.training import commands

    tokenizer = fitted_tokenizer(family)
    hf = hf_model(family, tokenizer.vocab_size, tokenizer.special_ids["pad"])
    hf_dir = tmp_path / "hf"
    hf.save_pretrained(hf_dir, safe_serialization=True)
    write_hf_tokenizer(tokenizer, str(hf_dir))
    record = commands.import_hf(str(hf_dir), str(tmp_path / "run"))
    assert record["format"] == family
    assert record["params"] == sum(p.numel() for p in hf.parameters())
    model, ours_tok, config = llm_jax.load(str(tmp_path / "run"))
    assert config.task.name == "masked_lm" and config.data.tokenizer == tokenizer.kind
    texts = ["abc defg hij .", "ba ab cd"]
    batch = ours_tok.encode_batch(texts, pad_to=T)
    ids, segments, mask = (np.asarray(batch[k]) for k in ("input_ids", "segment_ids", "mask"))
    _, want, _ = hf_outputs(hf, ids, segments.astype(np.int64), mask)
    got = model(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask))["mlm_logits"]
    np.testing.assert_allclose(np.asarray(got)[mask], want[mask], atol=1e-5, rtol=1e-5)

    # the README's snippet, as written there
    mask_token = ours_tok.id_to_token(ours_tok.special_ids["mask"])
    batch = ours_tok.encode_batch([f"abc defg {mask_token} ."])
    out = model(batch["input_ids"], batch["segment_ids"], batch["mask"])
    at = list(batch["input_ids"][0]).index(ours_tok.special_ids["mask"])
    assert isinstance(ours_tok.decode([int(out["mlm_logits"][0, at].argmax())]), str)

    out = commands.export_hf(str(tmp_path / "run"), str(tmp_path / "out"))
    assert out["family"] == family
    back = getattr(transformers, out["architecture"]).from_pretrained(str(tmp_path / "out"))
    _, again, _ = hf_outputs(back.eval(), ids, segments.astype(np.int64), mask)
    np.testing.assert_allclose(again, want, atol=1e-6)
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert hf_tok(texts[0])["input_ids"] == ids[0][mask[0]].tolist()
    with pytest.raises(ValueError, match="exists and is not empty"):
        commands.export_hf(str(tmp_path / "run"), str(tmp_path / "out"))
