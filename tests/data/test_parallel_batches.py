"""TokenBatches (bucketed, resumable training batches) and eval_batches for seq2seq data."""

import json

import numpy as np
import pytest

from llm_jax.data import TokenBatches, make_example, parallel_eval_batches

PAD, BOS, EOS = 0, 1, 2
IDS = {"pad_id": PAD, "bos_id": BOS, "eos_id": EOS}


def corpus(n=3000, seed=0, long=0):
    """Pairs with Multi30k-like lengths (subword source ~14 +- 5, target close to it); every
    target starts with two ids that spell its index, so a batch row names its example."""
    rng = np.random.default_rng(seed)
    src_len = np.clip(rng.normal(14, 5, n), 1, 60).astype(int)
    src_len[:long] = 80  # over max_len=64
    tgt_len = np.clip(src_len + rng.normal(1, 2, n), 2, 60).astype(int)
    src = np.split(rng.integers(3, 1000, src_len.sum()), np.cumsum(src_len)[:-1])
    tgt = np.split(rng.integers(3, 1000, tgt_len.sum()), np.cumsum(tgt_len)[:-1])
    for i, t in enumerate(tgt):
        t[:2] = 3 + i // 1000, 3 + i % 1000
    return src, tgt


def index_of(tgt_out_row):
    return int(tgt_out_row[0] - 3) * 1000 + int(tgt_out_row[1] - 3)


def check_rows(batch, src, tgt, rows):
    """Each real row is make_example of its pair, padded; padding rows (-1) are all pad with
    weight 0; rows given as None are not checked."""
    for b, i in enumerate(rows):
        if i is None:
            continue
        if i < 0:
            assert (batch["src"][b] == PAD).all() and not batch["src_mask"][b].any()
            assert (batch["tgt_weights"][b] == 0).all() and (batch["tgt_in"][b] == PAD).all()
            continue
        ex = make_example(src[i], tgt[i], bos_id=BOS, eos_id=EOS)
        for key, real in (("src", batch["src_mask"][b]), ("tgt_in", batch["tgt_weights"][b] > 0),
                          ("tgt_out", batch["tgt_weights"][b] > 0)):
            n = len(ex[key])
            assert real[:n].all() and not real[n:].any()
            np.testing.assert_array_equal(batch[key][b, :n], ex[key])
            assert (batch[key][b, n:] == PAD).all()


def test_make_example():
    ex = make_example([5, 6], [7, 8, 9], bos_id=BOS, eos_id=EOS)
    assert ex["src"].tolist() == [5, 6, EOS]
    assert ex["tgt_in"].tolist() == [BOS, 7, 8, 9] and ex["tgt_out"].tolist() == [7, 8, 9, EOS]
    assert all(v.dtype == np.int32 for v in ex.values())


@pytest.mark.parametrize("batch_multiple", [1, 8])
def test_epoch_covers_every_example_once(batch_multiple):
    src, tgt = corpus(long=5)
    max_tokens = 2048
    tb = TokenBatches(src, tgt, max_tokens=max_tokens, seed=3, max_len=64,
                      batch_multiple=batch_multiple, **IDS)
    assert tb.dropped == 5 and tb.num_examples == len(src)
    seen, real, slots = [], 0, 0
    for _ in range(tb.steps_per_epoch):
        batch = next(tb)
        B, L = batch["src"].shape
        assert (B, L, L) in tb.bucket_shapes and batch["tgt_in"].shape == (B, L)
        assert set(batch) == {"src", "src_mask", "tgt_in", "tgt_out", "tgt_weights"}
        assert batch["src"].dtype == batch["tgt_in"].dtype == batch["tgt_out"].dtype == np.int32
        assert batch["src_mask"].dtype == bool and batch["tgt_weights"].dtype == np.float32
        assert L % 8 == 0 and L <= 64 and B % batch_multiple == 0
        assert 2 * B * L <= max_tokens or B == batch_multiple
        rows = [index_of(r) if w.any() else -1
                for r, w in zip(batch["tgt_out"], batch["tgt_weights"])]
        check_rows(batch, src, tgt, rows)
        seen += [i for i in rows if i >= 0]
        real += batch["src_mask"].sum() + batch["tgt_weights"].sum()
        slots += 2 * B * L
    assert sorted(seen) == list(range(5, len(src)))  # the 5 over-long ones dropped
    # Rounding to multiples of 8 alone costs ~20% here; filled last batches add a little more.
    assert 1 - real / slots < 0.3


def test_padding_is_small_on_multi30k_sized_data():
    src, tgt = corpus(n=29000)
    tb = TokenBatches(src, tgt, max_tokens=4096, seed=0, max_len=64, **IDS)
    real = slots = 0
    for step in range(tb.steps_per_epoch):
        batch = tb.batch(step)
        real += batch["src_mask"].sum() + batch["tgt_weights"].sum()
        slots += batch["src"].size * 2
    src_len, tgt_len = np.array([len(s) for s in src]), np.array([len(t) for t in tgt])
    # What rounding each pair up to a multiple of 8 costs by itself; filled rows add little.
    rounded = -(-(np.maximum(src_len, tgt_len) + 1) // 8) * 8
    floor = 1 - (src_len + tgt_len + 2).sum() / (2 * rounded).sum()
    # Random batches of 64, each padded to its longest pair, waste ~45% on these lengths.
    order = np.random.default_rng(0).permutation(len(src))[: len(src) // 64 * 64]
    width = (np.maximum(src_len, tgt_len)[order] + 1).reshape(-1, 64).max(1)
    naive = 1 - (src_len + tgt_len + 2)[order].sum() / (2 * 64 * width).sum()
    assert 1 - real / slots < floor + 0.03 < 0.3 < naive


def summary_corpus(n=600, seed=0):
    """Long sources, short targets (SAMSum-like): source ~120 +- 50, target ~25 +- 10."""
    rng = np.random.default_rng(seed)
    src_len = np.clip(rng.normal(120, 50, n), 3, 300).astype(int)
    tgt_len = np.clip(rng.normal(25, 10, n), 2, 90).astype(int)
    src = np.split(rng.integers(3, 1000, src_len.sum()), np.cumsum(src_len)[:-1])
    tgt = np.split(rng.integers(3, 1000, tgt_len.sum()), np.cumsum(tgt_len)[:-1])
    for i, t in enumerate(tgt):
        t[:2] = 3 + i // 1000, 3 + i % 1000
    return src, tgt


def test_length_buckets_pad_each_side_apart():
    src, tgt = summary_corpus()
    buckets, max_tokens = (32, 64, 128, 256), 8192
    tb = TokenBatches(src, tgt, max_tokens=max_tokens, seed=0, max_len=288, batch_multiple=8,
                      length_buckets=buckets, **IDS)
    seen, slots, joint_slots = [], 0, 0
    for _ in range(tb.steps_per_epoch):
        batch = next(tb)
        (B, S), T = batch["src"].shape, batch["tgt_in"].shape[1]
        assert (B, S, T) in tb.bucket_shapes and batch["tgt_weights"].shape == (B, T)
        assert B * (S + T) <= max_tokens or B == 8
        rows = [index_of(r) if w.any() else -1
                for r, w in zip(batch["tgt_out"], batch["tgt_weights"])]
        check_rows(batch, src, tgt, rows)
        for i in (i for i in rows if i >= 0):  # each side in the smallest bucket holding it
            for n, width in ((len(src[i]) + 1, S), (len(tgt[i]) + 1, T)):
                assert width == next((b for b in buckets if b >= n), 288)
        seen += [i for i in rows if i >= 0]
        slots += B * (S + T)
        joint_slots += 2 * B * max(S, T)
    assert sorted(seen) == list(range(len(src)))
    assert len(tb.bucket_shapes) <= 5 * 2  # few jit shapes: 5 source x 2 target lengths
    assert slots < 0.65 * joint_slots  # what padding targets to the source's length costs
    # the buckets are part of the state: another bucketing gives other batches
    other = TokenBatches(src, tgt, max_tokens=max_tokens, seed=0, max_len=288,
                         batch_multiple=8, length_buckets=(64, 256), **IDS)
    with pytest.raises(ValueError, match="`length_buckets`"):
        other.set_state(tb.get_state())
    with pytest.raises(ValueError, match="length_buckets must be increasing"):
        TokenBatches(src, tgt, max_tokens=max_tokens, seed=0, max_len=288,
                     length_buckets=(64, 32), **IDS)


def test_eval_batches_with_length_buckets():
    src, tgt = summary_corpus(n=100)
    batches = list(parallel_eval_batches(src, tgt, batch_size=16, max_len=288,
                                         length_buckets=(32, 64, 128, 256), **IDS))
    index = np.concatenate([b["index"] for b in batches])
    assert sorted(index[index >= 0]) == list(range(100))
    for b in batches:
        real = [i for i in b["index"] if i >= 0]
        assert b["src"].shape[1] == next(x for x in (32, 64, 128, 256, 288)
                                         if x > max(len(src[i]) for i in real))
        assert b["tgt_in"].shape[1] == next(x for x in (32, 64, 128)
                                            if x > max(len(tgt[i]) for i in real))
        check_rows(b, src, tgt, b["index"])


def test_deterministic_given_seed_and_epochs_differ():
    src, tgt = corpus(n=500)
    kwargs = dict(max_tokens=1024, max_len=64, **IDS)
    a, b = TokenBatches(src, tgt, seed=1, **kwargs), TokenBatches(src, tgt, seed=1, **kwargs)
    c = TokenBatches(src, tgt, seed=2, **kwargs)
    n = a.steps_per_epoch
    first = [next(a) for _ in range(2 * n)]
    for x, y in zip(first, (next(b) for _ in range(2 * n))):
        assert all(np.array_equal(x[k], y[k]) for k in x)

    def same(x, y):
        return x["tgt_out"].shape == y["tgt_out"].shape and np.array_equal(x["tgt_out"],
                                                                             y["tgt_out"])

    assert not all(same(x, c.batch(i)) for i, x in enumerate(first[:n]))
    assert not all(same(x, y) for x, y in zip(first[:n], first[n:]))  # epoch 1 is reshuffled


def test_resume_gives_identical_batches():
    src, tgt = corpus(n=500)
    kwargs = dict(max_tokens=1024, seed=7, max_len=64, batch_multiple=4, **IDS)
    run = TokenBatches(src, tgt, **kwargs)
    for _ in range(run.steps_per_epoch - 2):  # resume just before an epoch boundary
        next(run)
    state = json.loads(json.dumps(run.get_state()))  # as a checkpoint stores it
    assert all(isinstance(v, int) for v in state.values())
    assert state["step"] == run.steps_per_epoch - 2 and state["epoch"] == 0
    expected = [next(run) for _ in range(5)]
    resumed = TokenBatches(src, tgt, **kwargs)
    resumed.set_state(state)
    for x, y in zip(expected, resumed):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert resumed.get_state() == run.get_state()
    assert run.get_state()["epoch"] == 1


def test_set_state_rejects_other_settings():
    src, tgt = corpus(n=200)
    state = TokenBatches(src, tgt, max_tokens=1024, seed=0, max_len=64, **IDS).get_state()
    other = TokenBatches(src, tgt, max_tokens=2048, seed=0, max_len=64, **IDS)
    with pytest.raises(ValueError, match="`max_tokens` is 1024.*max_tokens=2048"):
        other.set_state(state)
    with pytest.raises(ValueError, match="no field `step`"):
        other.set_state({})


def test_bad_input():
    src, tgt = corpus(n=10)
    with pytest.raises(ValueError, match="src has 10 examples but tgt has 9"):
        TokenBatches(src, tgt[:-1], max_tokens=512, seed=0, max_len=64, **IDS)
    with pytest.raises(ValueError, match="None of the 10 training examples fits max_len=4"):
        TokenBatches(src, tgt, max_tokens=512, seed=0, max_len=4, **IDS)
    with pytest.raises(ValueError, match=r"src\[1\] must be a 1-D array"):
        TokenBatches([[1], [[1]]], [[1], [1]], max_tokens=512, seed=0, max_len=64, **IDS)


def test_eval_batches_cover_all_and_index_restores_order():
    src, tgt = corpus(n=203, long=3)  # 3 sources longer than max_len: truncated, not dropped
    batches = list(parallel_eval_batches(src, tgt, batch_size=16, max_len=64, **IDS))
    assert len(batches) == 13 and all(b["src"].shape[0] == 16 for b in batches)
    index = np.concatenate([b["index"] for b in batches])
    assert sorted(index[index >= 0]) == list(range(203)) and (index < 0).sum() == 13 * 16 - 203
    lengths = [b["src"].shape[1] for b in batches]
    assert lengths == sorted(lengths) and max(lengths) == 64  # sorted; capped at max_len
    decoded = {}  # what a caller does with decoded outputs
    for b in batches:
        assert b["index"].dtype == np.int32
        for row, i in enumerate(b["index"]):
            if i >= 0:
                decoded[int(i)] = b["tgt_out"][row]
        short = [None if 0 <= i < 3 else i for i in b["index"]]
        check_rows(b, src, tgt, short)  # rows of the long examples are checked below
        w = b["tgt_weights"]
        assert (w[b["index"] < 0] == 0).all()
        assert w.sum() == sum(min(len(tgt[i]) + 1, b["src"].shape[1]) for i in b["index"] if i >= 0)
    assert [index_of(decoded[i]) for i in range(203)] == list(range(203))
    for b in batches:
        for row, i in enumerate(b["index"]):
            if 0 <= i < 3:  # truncated source: the first 63 ids, then eos
                assert b["src_mask"][row].all()
                np.testing.assert_array_equal(b["src"][row], np.append(src[i][:63], EOS))


def test_eval_batches_check_at_call_time():
    with pytest.raises(ValueError, match="src has 1 examples but tgt has 0"):
        parallel_eval_batches([[3]], [], batch_size=4, max_len=8, **IDS)
    assert list(parallel_eval_batches([], [], batch_size=4, max_len=8, **IDS)) == []
