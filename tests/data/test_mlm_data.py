"""Masked-LM data: documents, NSP/SOP pairs, FULL-SENTENCES packing, masking statistics, and
batches that are a function of (seed, step)."""

import numpy as np
import pytest

from llm_jax.data.mlm_batches import Masker, MLMBatches, eval_batches, layout
from llm_jax.data.mlm_data import (
    Documents,
    full_sentence_instances,
    pair_instances,
    split_documents,
    truncate_pair,
)

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
IDS = {"pad": PAD, "unk": UNK, "cls": CLS, "sep": SEP, "mask": MASK}
V = 1000
STRIDE = 10_000  # synthetic token id = STRIDE * (document + 1) + position in the document


def synthetic_docs(n_docs=120, seed=0, sentences=(3, 25), lengths=(3, 40)) -> Documents:
    """Documents whose ids say where they come from (id // STRIDE - 1: the document; then
    increasing with position), so that pairs can be checked against their source."""
    rng = np.random.default_rng(seed)
    ids, sent_lens, doc_counts = [], [], []
    for d in range(n_docs):
        n = int(rng.integers(*sentences))
        lens = rng.integers(*lengths, size=n)
        ids.append(STRIDE * (d + 1) + np.arange(lens.sum()))
        sent_lens += lens.tolist()
        doc_counts.append(n)
    return Documents(np.concatenate(ids).astype(np.int32),
                     np.concatenate([[0], np.cumsum(sent_lens)]).astype(np.int64),
                     np.concatenate([[0], np.cumsum(doc_counts)]).astype(np.int64))


def test_wikitext_documents_sentences_and_escapes():
    text = (" \n = Alpha = \n \n = = History = = \n A big @-@ old cat . It sat on 1 @,@ 000 "
            "mats ? Yes \n \n = Beta = \n <unk> lives at 3 @.@ 5 km . \n")
    assert split_documents(text, "wikitext", "[UNK]") == [
        ["A big-old cat .", "It sat on 1,000 mats ?", "Yes"], ["[UNK] lives at 3.5 km ."]]
    assert split_documents("a b\nc\n\n\nd\n", "lines") == [["a b", "c"], ["d"]]
    with pytest.raises(ValueError, match="config.task.text_format"):
        split_documents("x", "xml")


def _doc(token):
    return token // STRIDE - 1


@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_sentence_pairs(task):
    docs = synthetic_docs(300)
    inst = pair_instances(docs, 64, np.random.default_rng(1), sentence_task=task,
                          short_seq_prob=0.1)
    f = inst.flat
    assert len(inst) > 1000
    assert np.all(inst.a_len >= 1) and np.all(inst.b_len >= 1)
    assert np.all(inst.a_len + inst.b_len <= 64 - 3)
    assert abs(np.mean(inst.label) - 0.5) < 0.04
    a_first, a_last = f[inst.a_start], f[inst.a_start + inst.a_len - 1]
    b_first, b_last = f[inst.b_start], f[inst.b_start + inst.b_len - 1]
    same_doc = _doc(a_first) == _doc(b_first)
    # every span lies inside one document
    assert np.all(_doc(a_first) == _doc(a_last)) and np.all(_doc(b_first) == _doc(b_last))
    in_order, swapped = a_last < b_first, b_last < a_first
    yes, no = inst.label == 0, inst.label == 1
    assert np.all(same_doc[yes] & in_order[yes])
    if task == "nsp":  # "not next": B from another document
        assert not np.any(same_doc[no])
    else:  # SOP: B is A's continuation, swapped
        assert np.all(same_doc[no] & swapped[no])
    # the short-sequence targets: about 10% of instances well below the maximum
    assert 0.04 < np.mean(inst.a_len + inst.b_len < 40) < 0.2


def test_pair_truncation_cuts_the_longer_side_at_either_end():
    rng = np.random.default_rng(0)
    assert truncate_pair(100, 10, 61, rng)[1:] == (51, 0, 10)  # B short: untouched
    fronts = []
    for _ in range(400):
        fa, la, fb, lb = truncate_pair(100, 100, 61, rng)
        assert la + lb == 61 and abs(la - lb) <= 1
        fronts.append(fa / (100 - la))
    assert abs(np.mean(fronts) - 0.5) < 0.02  # each token from the front or the back
    # in instances: every pair fits, and A does not always start at a sentence start
    docs = synthetic_docs(20, sentences=(2, 3), lengths=(200, 201))
    inst = pair_instances(docs, 64, np.random.default_rng(0), sentence_task="nsp",
                          short_seq_prob=0.0)
    assert np.all(inst.a_len + inst.b_len == 61)
    offsets = inst.a_start - docs.sentence_starts[np.searchsorted(
        docs.sentence_starts, inst.a_start, side="right") - 1]
    assert len(set(offsets.tolist())) > 5


def test_nsp_needs_two_documents():
    with pytest.raises(ValueError, match="another document"):
        pair_instances(synthetic_docs(1), 64, np.random.default_rng(0), sentence_task="nsp",
                       short_seq_prob=0.1)


def test_full_sentences_fill_sequences_and_separate_documents():
    docs = synthetic_docs(60)
    inst = full_sentence_instances(docs, 128, SEP)
    assert np.all(inst.b_len == 0) and np.all(inst.a_len <= 126)
    assert np.mean(inst.a_len[:-1]) > 0.85 * 126  # packed full (the last may be short)
    pieces = [inst.flat[s:s + n] for s, n in zip(inst.a_start, inst.a_len)]
    for p in pieces:
        assert p[0] != SEP and p[-1] != SEP
        tokens = p[p != SEP]
        # documents change only across a separator, and each is in order
        doc_change = np.flatnonzero(np.diff(_doc(tokens)))
        n_seps = np.sum(p == SEP)
        same_doc = np.diff(_doc(tokens)) == 0
        assert len(doc_change) == n_seps and np.all(np.diff(tokens)[same_doc] == 1)
    # nothing lost or repeated, and instances end on sentence ends
    joined = np.concatenate(pieces)
    np.testing.assert_array_equal(joined[joined != SEP], docs.ids)
    ends = set((docs.ids[docs.sentence_starts[1:] - 1]).tolist())
    assert all(int(p[-1]) in ends for p in pieces)


def masker(P=22, word_starts=None):
    return Masker(vocab_size=V, special_ids=[CLS, SEP, PAD], mask_id=MASK, mask_prob=0.15,
                  max_predictions=P, word_starts=word_starts)


def random_rows(B=4000, T=128, seed=0):
    """Rows of [CLS] tokens [SEP] tokens [SEP] [PAD]... of random lengths."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, V, (B, T)).astype(np.int32)
    lengths = rng.integers(10, T + 1, B)
    ids[:, 0] = CLS
    mid = lengths // 2
    ids[np.arange(B), mid] = SEP
    ids[np.arange(B), lengths - 1] = SEP
    real = np.arange(T) < lengths[:, None]
    return np.where(real, ids, PAD), real


def test_masking_statistics():
    ids, real = random_rows()
    m = masker()
    out = m(ids, real, np.random.default_rng(1).random((len(ids), m.uniforms_per_row(128))))
    special = np.isin(ids, [CLS, SEP, PAD])
    B = len(ids)
    chosen = np.zeros_like(real)
    w = out["mlm_weights"] > 0
    chosen[np.repeat(np.arange(B), w.sum(1)), out["mlm_positions"][w]] = True
    assert not np.any(chosen & special)
    assert abs(chosen.sum() / (real & ~special).sum() - 0.15) < 0.01
    np.testing.assert_array_equal(out["mlm_ids"][w], np.take_along_axis(
        ids, out["mlm_positions"], 1)[w])
    assert np.all(np.diff(out["mlm_positions"], axis=1)[w[:, 1:]] > 0)  # ascending
    assert np.all(out["mlm_ids"][~w] == 0)
    new, old = out["input_ids"][chosen], ids[chosen]
    n = chosen.sum()
    assert abs(np.sum(new == MASK) / n - 0.8) < 0.01
    assert abs(np.sum(new == old) / n - 0.1) < 0.01
    random = (new != MASK) & (new != old)
    assert abs(random.sum() / n - 0.1) < 0.01
    assert not np.any(np.isin(new[random], [CLS, SEP, PAD, MASK]))
    np.testing.assert_array_equal(out["input_ids"][~chosen], ids[~chosen])


def test_whole_word_masking_never_splits_a_word():
    ids, real = random_rows(2000)
    starts = np.ones(V, bool)
    starts[500:] = False  # ids from 500 on are "##" continuation pieces
    m = masker(word_starts=starts)
    out = m(ids, real, np.random.default_rng(2).random((len(ids), m.uniforms_per_row(128))))
    special = np.isin(ids, [CLS, SEP, PAD])
    cand = real & ~special
    chosen = np.zeros_like(real)
    w = out["mlm_weights"] > 0
    chosen[np.repeat(np.arange(len(ids)), w.sum(1)), out["mlm_positions"][w]] = True
    # a continuation right after a candidate shares its word's fate
    cont = cand[:, 1:] & cand[:, :-1] & ~starts[ids[:, 1:]]
    assert cont.sum() > 10_000
    np.testing.assert_array_equal(chosen[:, 1:][cont], chosen[:, :-1][cont])
    assert abs(chosen.sum() / cand.sum() - 0.15) < 0.01
    assert not np.any(chosen & special) and np.all(w.sum(1) <= 22)


def test_layout_segments_and_filler_rows():
    docs = synthetic_docs(5)
    inst = pair_instances(docs, 32, np.random.default_rng(0), sentence_task="nsp",
                          short_seq_prob=0.0)
    out = layout(inst, np.array([0, -1]), 32, cls_id=CLS, sep_id=SEP, pad_id=PAD)
    la, lb = int(inst.a_len[0]), int(inst.b_len[0])
    row = out["input_ids"][0]
    assert row[0] == CLS and row[la + 1] == SEP and row[la + lb + 2] == SEP
    np.testing.assert_array_equal(row[1:la + 1], inst.flat[inst.a_start[0]:][:la])
    np.testing.assert_array_equal(row[la + 2:la + lb + 2], inst.flat[inst.b_start[0]:][:lb])
    assert out["mask"][0].sum() == la + lb + 3 and np.all(row[la + lb + 3:] == PAD)
    np.testing.assert_array_equal(out["segment_ids"][0][:la + lb + 3],
                                  [0] * (la + 2) + [1] * (lb + 1))
    assert out["mask"][1].tolist() == [True] + [False] * 31 and out["input_ids"][1][0] == CLS
    assert out["weights"].tolist() == [1.0, 0.0]


def batches(masking="static", seed=0, n_docs=30, B=8):
    docs = synthetic_docs(n_docs, sentences=(2, 5), lengths=(3, 10))
    inst = pair_instances(docs, 32, np.random.default_rng(0), sentence_task="nsp",
                          short_seq_prob=0.1)
    inst.flat = (inst.flat % (V - 5) + 5).astype(np.int32)  # ordinary ids for the masker
    return MLMBatches(inst, batch_size=B, max_len=32, seed=seed, masker=masker(7),
                      masking=masking, ids=IDS, sentence_task=True)


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_batches_are_a_function_of_seed_and_step_and_resume_exactly(masking):
    a = batches(masking)
    first = [next(a) for _ in range(7)]
    state = a.get_state()
    rest = [next(a) for _ in range(5)]
    b = batches(masking)
    b.set_state(state)
    assert all(_same(x, next(b)) for x in rest)
    assert _same(batches(masking).batch(3), first[3])
    assert not _same(batches(masking, seed=1).batch(3), first[3])
    with pytest.raises(ValueError, match="seed"):
        batches(masking, seed=1).set_state(state)


def test_every_instance_once_per_epoch_even_across_batches():
    b = batches(B=7)
    n = b.num_instances
    assert n % 7  # epochs end inside a batch
    rows = np.concatenate([b.rows(s) for s in range(int(np.ceil(3 * n / 7)))])[:3 * n]
    for e in range(3):
        assert sorted(rows[e * n:(e + 1) * n].tolist()) == list(range(n))
    assert not np.array_equal(rows[:n], rows[n:2 * n])  # reshuffled


def _masks_by_instance(b, epoch):
    """{instance: (masked positions, input ids)} over epoch `epoch` (B divides nothing here)."""
    out = {}
    n = b.num_instances
    first, last = epoch * n, (epoch + 1) * n
    for step in range(first // b.B, -(-last // b.B)):
        batch, rows = b.batch(step), b.rows(step)
        for r, inst in enumerate(rows):
            g = step * b.B + r
            if first <= g < last:
                w = batch["mlm_weights"][r] > 0
                out[int(inst)] = (tuple(batch["mlm_positions"][r][w]),
                                  batch["input_ids"][r].tobytes())
    return out


def test_static_masks_repeat_and_dynamic_masks_change_between_epochs():
    static, dynamic = batches("static"), batches("dynamic")
    s0, s1 = _masks_by_instance(static, 0), _masks_by_instance(static, 1)
    assert s0 == s1 and len(s0) == static.num_instances
    d0, d1 = _masks_by_instance(dynamic, 0), _masks_by_instance(dynamic, 1)
    differ = sum(d0[i] != d1[i] for i in d0)
    assert differ > 0.9 * len(d0)


def test_eval_batches_cover_every_instance_once():
    b = batches()
    out = list(eval_batches(b.inst, batch_size=8, max_len=32, seed=0, masker=b.masker, ids=IDS,
                            sentence_task=True))
    assert len(out) == -(-b.num_instances // 8)
    assert sum(x["weights"].sum() for x in out) == b.num_instances
    again = list(eval_batches(b.inst, batch_size=8, max_len=32, seed=0, masker=b.masker,
                              ids=IDS, sentence_task=True, max_batches=2))
    assert len(again) == 2 and _same(again[1], out[1])
