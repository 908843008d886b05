"""Parity with Hugging Face's MarianMTModel (PyTorch), built offline from random weights."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402

from llm_jax.interop import marian  # noqa: E402

V, PAD, EOS = 61, 60, 0


def random_marian(tmp_path, eos_bias=0.0, **overrides):
    """A small MarianMTModel with every tensor random (LayerNorms and the logits bias too, so
    a mapping that swapped two of them would show), saved as safetensors."""
    torch.manual_seed(0)
    cfg = transformers.MarianConfig(
        vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=48,
        max_position_embeddings=40, activation_function="swish", scale_embedding=True,
        pad_token_id=PAD, decoder_start_token_id=PAD, eos_token_id=EOS, forced_eos_token_id=EOS,
        dropout=0.1, init_std=0.3, **overrides)
    model = transformers.MarianMTModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.2 * torch.randn_like(p))
        model.final_logits_bias.normal_(0, 0.5)
        model.final_logits_bias[0, EOS] += eos_bias  # so that hypotheses end at many lengths
    model.save_pretrained(tmp_path, safe_serialization=True)
    return model


def batch():
    """Two sources of different lengths (the shorter right-padded), teacher-forced targets."""
    rng = np.random.default_rng(1)
    src = rng.integers(1, V - 1, (2, 9))
    src[:, -1] = EOS
    src[1, 5:] = PAD
    src[1, 4] = EOS
    mask = (np.arange(9)[None] < np.array([[9], [5]]))
    tgt = rng.integers(1, V - 1, (2, 7))
    tgt[:, 0] = PAD  # decoder start
    return src, mask, tgt


def test_imported_marian_logits_match_transformers(tmp_path):
    hf = random_marian(tmp_path)
    ours, cfg, ids = marian.load_marian(str(tmp_path))
    assert ids == {"pad_id": PAD, "bos_id": PAD, "eos_id": EOS}
    src, mask, tgt = batch()
    with torch.no_grad():
        want = hf(input_ids=torch.tensor(src), attention_mask=torch.tensor(mask.astype(np.int64)),
                  decoder_input_ids=torch.tensor(tgt)).logits.numpy()
    got = np.asarray(ours(jnp.asarray(src), jnp.asarray(mask), jnp.asarray(tgt)))
    # logits have std ~1 here; a wrong transpose, scale or LayerNorm gives errors of order 0.1+
    np.testing.assert_allclose(got[0], want[0], atol=1e-5, rtol=1e-5)
    # the padded row: compare every target position (its source padding must be masked)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5, rtol=1e-5)
    assert np.std(want) > 0.5


def test_export_round_trip_returns_the_same_tensors(tmp_path):
    random_marian(tmp_path)
    hf_cfg, tensors = marian.read_hf_dir(str(tmp_path))
    _, cfg, _ = marian.load_marian(str(tmp_path))
    back = marian.params_to_hf(marian.params_from_hf(tensors, cfg), cfg)
    for name, t in tensors.items():
        if name in marian.EMBEDDING_NAMES and name not in back:
            name_back = "model.shared.weight"
        else:
            name_back = name
        np.testing.assert_array_equal(back[name_back], t, err_msg=name)


def test_unsupported_marian_configs_name_the_field(tmp_path):
    random_marian(tmp_path)
    hf_cfg, _ = marian.read_hf_dir(str(tmp_path))
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        marian.model_config({**hf_cfg, "tie_word_embeddings": False})
    _, tensors = marian.read_hf_dir(str(tmp_path))
    (tmp_path / marian.WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        marian.read_hf_dir(str(tmp_path))
    # a torch checkpoint is read with torch.load(weights_only=True), never a plain unpickle
    torch.save({k: torch.tensor(v) for k, v in tensors.items()}, tmp_path / "pytorch_model.bin")
    _, from_torch = marian.read_hf_dir(str(tmp_path))
    assert all(np.array_equal(from_torch[k], v) for k, v in tensors.items())


@pytest.mark.parametrize("beams", [3, 4])
def test_beam_search_gives_the_ids_of_transformers_generate(tmp_path, beams):
    """32 sources of 2-8 tokens; with an EOS bias, hypotheses end at many lengths (2 to the
    forced EOS at 16), so the stopping rule, the finishing rule (only the best `beams` of the
    2 x beams extensions may finish) and the free forced EOS are all exercised: dropping the
    finishing rule changes one row of these 32."""
    from llm_jax.tasks.seq2seq_decoding import translate_array

    hf = random_marian(tmp_path, eos_bias=4.0)
    ours, _, ids = marian.load_marian(str(tmp_path))
    rng = np.random.default_rng(2)
    src = rng.integers(1, V - 1, (32, 8))
    lengths = rng.integers(2, 9, 32)
    mask = np.arange(8)[None] < lengths[:, None]
    src = np.where(mask, src, PAD)
    src[np.arange(32), lengths - 1] = EOS
    with torch.no_grad():
        want = hf.generate(input_ids=torch.tensor(src),
                           attention_mask=torch.tensor(mask.astype(np.int64)), num_beams=beams,
                           max_length=16, do_sample=False).numpy()
    seqs, _, lens = translate_array(ours, src, mask, bos_id=ids["bos_id"], eos_id=EOS,
                                    pad_id=PAD, max_len=16, beam_size=beams, alpha=1.0,
                                    length_penalty="hf", hf_rules=True, force_eos=True)
    for row in range(32):
        n = int(lens[row, 0])
        assert seqs[row, 0, :n].tolist() == want[row, :n].tolist(), row
        assert all(t == PAD for t in want[row, n:])  # HF pads the shorter outputs
    assert len({int(n) for n in lens[:, 0]}) >= 4 and lens.min() < 16, lens[:, 0]


def marian_tokenizer_files(directory, vocab_size=V):
    """source.spm / target.spm trained here on German / English sentences, and a vocab.json of
    their pieces (Marian's layout: </s> 0, <unk> 1, ..., <pad> last)."""
    import sentencepiece as spm

    de = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch."]
    en = ["A man rides a bike.", "Two dogs play in the snow.", "A woman reads a book."]
    pieces = []
    for name, text in (("source", de), ("target", en)):
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text * 20), model_prefix=str(directory / name),
            vocab_size=34, model_type="unigram", character_coverage=1.0, minloglevel=2,
            hard_vocab_limit=False)
        (directory / f"{name}.model").rename(directory / f"{name}.spm")
        sp = spm.SentencePieceProcessor(model_file=str(directory / f"{name}.spm"))
        pieces += [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())]
    vocab = ["</s>", "<unk>"] + sorted(set(pieces))
    vocab = vocab[:vocab_size - 1] + [f"<extra{i}>" for i in range(vocab_size - 1 - len(vocab))]
    (directory / "vocab.json").write_text(json.dumps({p: i for i, p in enumerate(vocab + ["<pad>"])}))
    return de


def test_import_hf_workdir_translates_as_transformers_does(tmp_path):
    from llm_jax.training import commands

    hf_dir = tmp_path / "hf"
    hf = random_marian(hf_dir, eos_bias=4.0)
    de = marian_tokenizer_files(hf_dir) + ["", "Ein Hund 日本 spielt."]
    tok = transformers.MarianTokenizer(str(hf_dir / "source.spm"), str(hf_dir / "target.spm"),
                                       str(hf_dir / "vocab.json"))
    ours = commands.import_hf(str(hf_dir), str(tmp_path / "run"))
    # HF counts its fixed sinusoidal tables as parameters, and its logits bias is a buffer
    positions = sum(p.numel() for n, p in hf.named_parameters() if "embed_positions" in n)
    hf_count = sum(p.numel() for p in hf.parameters()) - positions + hf.final_logits_bias.numel()
    assert ours["params"] == hf_count
    got = commands.translate_lines(str(tmp_path / "run"), de, beam_size=4, max_len=15)
    real = [line for line in de if line]
    batch = tok(real, return_tensors="pt", padding=True)
    n = int(batch["attention_mask"][0].sum())
    assert batch["input_ids"][0, :n - 1].tolist() == list(  # ids without the final </s>
        commands.load(str(tmp_path / "run"))[1].encode(real[0]))
    with torch.no_grad():
        out = hf.generate(**batch, num_beams=4, max_length=16)
    want = tok.batch_decode(out, skip_special_tokens=True)
    assert got[3] == ""  # the empty input line stays an empty output line
    assert [g for g, line in zip(got, de) if line] == want
    with pytest.raises(ValueError, match="not empty"):
        commands.import_hf(str(hf_dir), str(tmp_path / "run"))


def test_no_repeat_ngram_gives_the_ids_of_transformers_generate(tmp_path):
    """no_repeat_ngram_size=2 with beams (and greedy): the same ids as Hugging Face's generate.
    A random model repeats bigrams often, so the constraint changes most of these outputs."""
    from llm_jax.tasks.seq2seq_decoding import translate_array

    hf = random_marian(tmp_path)
    ours, _, ids = marian.load_marian(str(tmp_path))
    rng = np.random.default_rng(5)
    src = rng.integers(1, V - 1, (16, 6))
    src[:, -1] = EOS
    mask = np.ones_like(src, bool)
    changed = 0
    for beams in (1, 4):
        with torch.no_grad():
            want = hf.generate(input_ids=torch.tensor(src), attention_mask=torch.tensor(mask),
                               num_beams=beams, max_length=20, do_sample=False,
                               no_repeat_ngram_size=2).numpy()
        common = dict(bos_id=ids["bos_id"], eos_id=EOS, pad_id=PAD, max_len=20, beam_size=beams,
                      alpha=1.0, length_penalty="hf", hf_rules=True, force_eos=True)
        seqs, _, lens = translate_array(ours, src, mask, no_repeat_ngram=2, **common)
        plain, _, _ = translate_array(ours, src, mask, **common)
        for row in range(16):
            n = int(lens[row, 0])
            out = seqs[row, 0, :n].tolist()
            assert out == want[row, :n].tolist(), (beams, row)
            bigrams = list(zip(out, out[1:]))
            assert len(bigrams) == len(set(bigrams)), (beams, row)
            changed += plain[row, 0, :n].tolist() != out
    assert changed >= 8, changed
