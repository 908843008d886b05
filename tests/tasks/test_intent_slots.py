"""The intent_slots task (JointBERT): the two-part loss and its weight, gold labels scored
through the eval's own decoding, a tiny ATIS-like run whose best checkpoint is chosen by
sentence accuracy, labels only dev has, and users' folders with bad files."""

import importlib.util
import json

import jax
import numpy as np
import pytest
from flax import nnx

import llm_jax
from llm_jax.data.example_batches import padded_batches
from llm_jax.data.tagging_data import UNK, intent_names, read_intent_slots, tag_names
from llm_jax.models import build_model
from llm_jax.ops.crf import crf_decode, crf_log_likelihood
from llm_jax.tasks.intent_slots import IntentSlots
from llm_jax.tasks.tagging import LABELS_FILE
from llm_jax.training.commands import train
from llm_jax.training.metrics import read_metrics
from llm_jax.training.trainer import BEST_DIR
from tests.conftest import REPO, load_config, require_real_data

CITIES = ["boston", "denver", "dallas", "new york", "san francisco"]
DAYS = ["monday", "friday"]


def utterance(rng):
    """(words, slot tags, intent) in ATIS's style; the opening words give the intent away, and
    so does the shape (a tiny model trained for seconds reads lengths sooner than words)."""
    def city(role):
        words = str(rng.choice(CITIES)).split()
        return words, [f"B-{role}.city_name"] + [f"I-{role}.city_name"] * (len(words) - 1)

    kind = int(rng.integers(3))
    if kind == 2:
        c, t = city("toloc")
        return ["ground", "transportation", "in", *c], ["O", "O", "O", *t], "atis_ground_service"
    a, ta = city("fromloc")
    b, tb = city("toloc")
    if kind == 1:
        return ["cheapest", "fare", "from", *a], ["O", "O", "O", *ta], "atis_airfare"
    day = str(rng.choice(DAYS))
    words = ["show", "flights", "from", *a, "to", *b, "on", day]
    tags = ["O", "O", "O", *ta, "O", *tb, "O", "B-depart_date.day_name"]
    return words, tags, "atis_flight"


def write_split(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    for name, column in (("seq.in", 0), ("seq.out", 1)):
        (folder / name).write_text("".join(" ".join(r[column]) + "\n" for r in rows), encoding="utf-8")
    (folder / "label").write_text("".join(r[2] + "\n" for r in rows), encoding="utf-8")


def tiny(tmp_path, n_train=64, n_dev=24):
    """configs/intent_slots.py:tiny on folders in tmp_path, its label sizes those of the
    written training split, with a WordPiece vocabulary fitted on it."""
    rng = np.random.default_rng(1)
    write_split(tmp_path / "train", [utterance(rng) for _ in range(n_train)])
    write_split(tmp_path / "valid", [utterance(rng) for _ in range(n_dev)])
    train_split = read_intent_slots("atis", "train", path=tmp_path / "train")
    c = load_config("intent_slots", "tiny")
    c.task.update(train_dir=str(tmp_path / "train"), eval_dir=str(tmp_path / "valid"))
    c.model.update(num_labels=len(tag_names(train_split)), num_intents=len(intent_names(train_split)))
    c.data.update(vocab_file="fit", vocab_size=120)
    return c


def gold_ids(task, examples):
    """(slot ids [N, T], intent ids [N]): one-hot gold logits on first sub-words, random
    elsewhere, argmax'd batch by batch as the eval reads the split."""
    rng = np.random.default_rng(0)
    C = len(task.tag_names)
    slots, intents = [], []
    for batch in padded_batches(examples, 8):
        logits = rng.normal(size=(*batch["labels"].shape, C))
        first = batch["label_weights"] > 0
        logits[first] = 10.0 * np.eye(C)[batch["labels"][first]]
        real = batch["weights"] > 0
        slots.append(logits.argmax(-1)[real])
        intents.append(batch["intent_labels"][real])
    return np.concatenate(slots), np.concatenate(intents)


def predictions(task, examples, slot_ids, intent_ids):
    return {"tags": task.word_tags(examples, slot_ids),
            "intents": [task.labels["intents"][i] for i in intent_ids]}


def test_loss_is_intent_ce_plus_weighted_slot_ce_over_first_subwords(tmp_path):
    c = tiny(tmp_path)
    task = IntentSlots(c, str(tmp_path / "w"))
    c.model.vocab_size = task.vocab_size
    model = build_model(c.model, rngs=nnx.Rngs(0))
    batch = next(iter(task.eval_batches(8)))
    batch["weights"][-2:] = 0.0  # rows of weight 0 count for nothing
    out = model(batch["input_ids"], batch["segment_ids"], batch["mask"])
    log_p = np.asarray(jax.nn.log_softmax(out["intent_logits"]))
    rows = batch["weights"] > 0
    intent_ce = -log_p[rows, batch["intent_labels"][rows]].mean()
    log_q = np.asarray(jax.nn.log_softmax(out["slot_logits"]))
    first = (batch["label_weights"] > 0) & rows[:, None]
    assert first.sum() == sum(len(t) for t in task.valid.tags[:6])  # a label per word
    slot_ce = -np.take_along_axis(log_q, batch["labels"][..., None], -1)[..., 0][first].mean()
    for coef in (1.0, 0.0, 2.5):
        task.cfg.slot_loss_coef = coef
        loss, m = task.loss(model, batch)
        assert float(loss) == pytest.approx(intent_ce + coef * slot_ce, rel=1e-5)
        assert float(m["intent_loss"][0] / m["intent_loss"][1]) == pytest.approx(intent_ce, rel=1e-5)
        assert float(m["slot_loss"][0] / m["slot_loss"][1]) == pytest.approx(slot_ce, rel=1e-5)
        assert float(m["loss"][1]) == 6 and float(m["slot_loss"][1]) == first.sum()


def test_gold_labels_through_the_eval_decoding_score_100(tmp_path):
    task = IntentSlots(tiny(tmp_path), str(tmp_path / "w"))
    ex = task.valid
    assert (ex.pieces.first[:, 0] >= 0).all() and ex.pieces.cut_words == 0
    s = task.scores(ex, predictions(task, ex, *gold_ids(task, ex)))
    assert s == {"intent_accuracy": 100.0, "slot_precision": 100.0, "slot_recall": 100.0,
                 "slot_f1": 100.0, "sentence_accuracy": 100.0, "slot_cut_words": 0.0}
    slot_ids, intent_ids = gold_ids(task, ex)
    intent_ids[0] = (intent_ids[0] + 1) % len(task.labels["intents"])
    s = task.scores(ex, predictions(task, ex, slot_ids, intent_ids))
    assert s["intent_accuracy"] == s["sentence_accuracy"] == pytest.approx(100 * 23 / 24)
    assert s["slot_f1"] == 100.0


@pytest.fixture(scope="module")
def intent_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("atis")
    c = tiny(tmp)
    summary = train(c, str(tmp / "run"))
    return c, tmp / "run", summary


def test_tiny_atis_run_learns_and_keeps_the_best_checkpoint_by_sentence_accuracy(intent_run):
    c, workdir, summary = intent_run
    rows = list(read_metrics(workdir / "metrics.jsonl"))
    evals = [r for r in rows if "eval/loss" in r]
    assert [r["step"] for r in evals] == [20, 40, 60, 80]
    keys = {"eval/loss", "eval/intent_loss", "eval/slot_loss", "eval/intent_top1",
            "eval/slot_token_accuracy", "eval/intent_accuracy", "eval/slot_f1",
            "eval/sentence_accuracy", "eval/slot_cut_words"}
    assert keys <= evals[0].keys()
    assert evals[-1]["eval/loss"] < evals[0]["eval/loss"]
    assert summary["eval/intent_accuracy"] >= 80.0 and summary["eval/slot_f1"] >= 80.0
    # the per-utterance intent accuracy is the batch metric's, over the whole split (0-100)
    assert summary["eval/intent_accuracy"] == pytest.approx(100 * summary["eval/intent_top1"])
    best = max(r["eval/sentence_accuracy"] for r in evals)
    assert c.train.best_metric == "eval/sentence_accuracy"
    assert summary["best/eval/sentence_accuracy"] == best
    first_best = next(r["step"] for r in evals if r["eval/sentence_accuracy"] == best)
    assert [p.name for p in (workdir / BEST_DIR).iterdir()] == [str(first_best)]
    labels = json.loads((workdir / LABELS_FILE).read_text())
    assert labels["intents"] == [UNK, "atis_airfare", "atis_flight", "atis_ground_service"]
    assert labels["tags"][:4] == ["O", UNK, "B-depart_date.day_name", "B-fromloc.city_name"]
    model, _, _ = llm_jax.load(str(workdir))
    task = IntentSlots(c, str(workdir))  # the saved tokenizer and labels
    p = task.predict(model, task.valid)
    assert len(p["intents"]) == len(p["tags"]) == len(task.valid)


def test_crf_loss_is_the_sentence_nll_of_the_word_chain(tmp_path):
    """model.crf=True: the slot loss is the mean over utterances of the CRF's NLL, the chain
    running over the words (first sub-words) exactly as over a dense [N, words] array."""
    c = tiny(tmp_path)
    c.model.crf = True
    task = IntentSlots(c, str(tmp_path / "w"))
    c.model.vocab_size = task.vocab_size
    model = build_model(c.model, rngs=nnx.Rngs(0))
    C = len(task.tag_names)
    rng = np.random.default_rng(3)
    for p in (model.crf.transitions, model.crf.start, model.crf.end):
        p[...] = rng.normal(size=p[...].shape).astype(np.float32)
    batch = next(iter(task.eval_batches(8)))
    batch["weights"][-2:] = 0.0
    out = model(batch["input_ids"], batch["segment_ids"], batch["mask"])
    np.testing.assert_array_equal(batch["word_starts"], batch["label_weights"] > 0)
    emissions, labels, nll = np.asarray(out["slot_logits"]), batch["labels"], []
    for n in range(6):  # the real rows, each its words gathered into a dense chain
        pos = task.valid.pieces.first[n, :task.valid.pieces.num_words[n]]
        ll = crf_log_likelihood(emissions[n:n + 1, pos], labels[n:n + 1, pos],
                                np.ones((1, len(pos)), bool), *model.crf.arrays())
        nll.append(-float(ll[0]))
    loss, m = task.loss(model, batch)
    assert float(m["slot_loss"][0] / m["slot_loss"][1]) == pytest.approx(np.mean(nll), rel=1e-5)
    assert float(m["slot_loss"][1]) == 6
    intent_ce = m["intent_loss"][0] / m["intent_loss"][1]
    assert float(loss) == pytest.approx(float(intent_ce) + np.mean(nll), rel=1e-5)
    # prediction is the Viterbi path over the words
    ids = task.predicted_ids(model, task.valid)["slot_logits"]
    for n in (0, 5):
        pos = task.valid.pieces.first[n, :task.valid.pieces.num_words[n]]
        want = crf_decode(emissions[n:n + 1, pos], np.ones((1, len(pos)), bool),
                          *model.crf.arrays())
        np.testing.assert_array_equal(ids[n, pos], np.asarray(want)[0])
    assert C == model.crf.transitions[...].shape[0]


def test_tiny_atis_run_with_a_crf_learns_and_predicts(tmp_path):
    c = tiny(tmp_path)
    c.model.crf = True
    summary = train(c, str(tmp_path / "run"))
    assert summary["eval/slot_f1"] >= 80.0 and summary["eval/intent_accuracy"] >= 80.0
    model, _, _ = llm_jax.load(str(tmp_path / "run"))
    assert model.crf is not None and np.abs(np.asarray(model.crf.transitions[...])).max() > 0
    task = IntentSlots(c, str(tmp_path / "run"))
    [row] = task.predict_json(model, [["show", "flights", "from", "boston", "to", "denver"]])
    # a tag per word from the vocabulary (what they are is the eval's slot F1 above: 80 steps
    # of a tiny model do not settle every word the same way on every machine)
    assert len(row["slots"]) == 6 and set(row["slots"]) <= set(task.tag_names)
    assert row["intent"] in task.labels["intents"]


def test_a_crf_needs_a_tagging_head():
    c = load_config("glue", "tiny")
    c.model.crf = True
    with pytest.raises(ValueError, match="model.crf=True needs a tagging head"):
        build_model(c.model, rngs=nnx.Rngs(0))


def test_labels_only_dev_has_are_unk_and_never_right(tmp_path):
    c = tiny(tmp_path)
    write_split(tmp_path / "dev2", [(["breakfast", "on", "flight", "boston"],
                                     ["B-meal", "O", "O", "B-toloc.city_name"], "atis_meal"),
                                    (["show", "flights", "to", "denver"],
                                     ["O", "O", "O", "B-toloc.city_name"], "atis_flight")])
    c.task.eval_dir = str(tmp_path / "dev2")
    task = IntentSlots(c, str(tmp_path / "w"))
    ex = task.valid
    assert ex.intent_labels[0] == task.labels["intents"].index(UNK)
    assert ex.labels[0, ex.pieces.first[0, 0]] == task.tag_names.index(UNK)
    assert ex.intents == ["atis_meal", "atis_flight"] and ex.tags[0][0] == "B-meal"
    s = task.scores(ex, predictions(task, ex, *gold_ids(task, ex)))
    assert s["intent_accuracy"] == s["sentence_accuracy"] == 50.0
    assert s["slot_precision"] == 100.0 and s["slot_recall"] == pytest.approx(200 / 3)


def test_bad_files_and_configs_are_one_line_errors(tmp_path):
    c = tiny(tmp_path)
    bad = tmp_path / "bad"
    write_split(bad, [(["to", "boston"], ["O", "B-toloc.city_name"], "atis_flight")] * 3)
    (bad / "seq.out").write_text("O B-toloc.city_name\nO\nO B-toloc.city_name\n", encoding="utf-8")
    c.task.eval_dir = str(bad)
    with pytest.raises(ValueError) as e:
        IntentSlots(c, str(tmp_path / "w"))
    assert str(e.value) == (f"{bad / 'seq.out'}:2: field 'slots': 1 tags for the 2 words of "
                            "seq.in line 2")
    c = tiny(tmp_path)
    c.model.num_intents = 3
    with pytest.raises(ValueError, match=r"config.model.num_intents=3, but the training split's "
                                         r"intent vocabulary has 4 .*num_intents=4"):
        IntentSlots(c, str(tmp_path / "w2"))
    c = tiny(tmp_path)
    c.task.slot_loss_coef = -1.0
    with pytest.raises(ValueError, match="config.task.slot_loss_coef=-1.0"):
        IntentSlots(c, str(tmp_path / "w3"))
    c = tiny(tmp_path)
    c.task.update(corpus="mine", train_dir="")
    with pytest.raises(ValueError, match="config.task.corpus='mine'"):
        IntentSlots(c, str(tmp_path / "w4"))


def test_config_recipe_and_the_real_label_sizes(monkeypatch):
    spec = importlib.util.spec_from_file_location("intent_config", REPO / "configs" / "intent_slots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    atis = module.get_config("bert_mini")
    assert (atis.optimizer.lr, atis.train.batch_size, atis.train.epochs, atis.data.seq_len,
            atis.model.head_dropout, atis.task.slot_loss_coef) == (1e-3, 32, 20, 50, 0.1, 1.0)
    assert atis.model.crf and module.get_config("scratch").model.crf
    assert atis.init_from_prefix == "backbone" and atis.task.corpus == "atis"
    snips = module.get_config("scratch,snips")
    assert (snips.model.num_intents, snips.model.num_labels) == (8, 73)
    with pytest.raises(ValueError, match="unknown corpus 'mnli'"):
        module.get_config("tiny,mnli")
    for corpus, (n_intents, n_tags) in module.LABEL_SIZES.items():
        root = require_real_data(*(f"{corpus}/train/{f}" for f in ("seq.in", "seq.out", "label")))
        monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
        train_split = read_intent_slots(corpus, "train")
        assert (len(intent_names(train_split)), len(tag_names(train_split))) == (n_intents, n_tags)
        assert len(train_split) == module.TRAIN_UTTERANCES[corpus]
