"""ATIS and SNIPS joint intent detection and slot filling: `python -m llm_jax reproduce atis_snips`.

configs/intent_slots.py (JointBERT's recipe with its CRF over the slots, 20 epochs, batch 32,
50 sub-words, lr 1e-3: the CRF, the epochs and the rate chosen on ATIS dev, README.md) on
BERT-mini and RoBERTa-mini pre-trained here (configs/bert_wikitext2.py:mini and roberta_mini,
the runs of experiments/bert_pretraining) and on BERT-mini's encoder from scratch. Each run
scores the test split at its end with its last state, as JointBERT does. The checks are the
issue's bar: BERT-mini beats the slot-gated model of Goo et al. 2018 (full attention) on the
test set's intent accuracy and slot F1 (entity-level, conlleval / seqeval), and pre-training
beats scratch on slot F1; report.py makes the table beside the published rows.
"""

from llm_jax.reproduce import ConfigRun, Metric, Published, Row, ScriptRun, Study, at_least

QUIET = {"train.progress_bar": False}  # the recorded runs wrote their logs to files
# corpus -> (slot-gated intent accuracy, slot F1, sentence accuracy): Goo et al. 2018, Table 2
# (full attention), as ../shared/data/README.md and ANCHORS.md give them
SLOT_GATED = {"atis": (93.6, 94.8, 82.2), "snips": (97.0, 88.8, 75.5)}
# CPU minutes of 20 epochs of 32 x 50 sub-words with the CRF: ATIS's 2,800 steps took 23 min
# (measured); SNIPS's 8,180 steps at the same 0.45 s a step
MINUTES = {"atis": 23, "snips": 62}


def _runs():
    runs = [ConfigRun("bert_mini", "configs/bert_wikitext2.py:mini", QUIET, cpu_minutes=50,
                      gpu_minutes=3)]
    # the pre-trained runs first: the slot-gated bar is theirs; the baselines after them
    for corpus in SLOT_GATED:
        runs.append(ConfigRun(f"{corpus}_bert_mini", f"configs/intent_slots.py:bert_mini,{corpus}",
                              {"init_from": "{bert_mini}", **QUIET},
                              cpu_minutes=MINUTES[corpus], gpu_minutes=2))
    for corpus in SLOT_GATED:
        runs.append(ConfigRun(f"{corpus}_scratch", f"configs/intent_slots.py:scratch,{corpus}",
                              QUIET, cpu_minutes=MINUTES[corpus], gpu_minutes=2))
    runs.append(ConfigRun("roberta_mini", "configs/bert_wikitext2.py:roberta_mini", QUIET,
                          cpu_minutes=55, gpu_minutes=3))
    for corpus in SLOT_GATED:
        # the hf variant reads RoBERTa's shape from its workdir; the rate stays bert_mini's
        runs.append(ConfigRun(f"{corpus}_roberta_mini", f"configs/intent_slots.py:hf,{corpus}",
                              {"init_from": "{roberta_mini}", "data.tokenizer": "roberta_bpe",
                               "optimizer.lr": 1e-3, **QUIET},
                              cpu_minutes=MINUTES[corpus], gpu_minutes=2))
    finetuned = [r for r in runs if r.name.startswith(tuple(SLOT_GATED))]  # not pre-training
    runs.append(ScriptRun("table", ("experiments/atis_snips/report.py",
                                    "--workdirs=" + ",".join(f"{{{r.name}}}" for r in finetuned),
                                    "--out={out}"),
                          outputs=("results.json", "results.md", "scores.png"), cpu_minutes=1,
                          gpu_minutes=1))
    return tuple(runs)


def _test(corpus, backbone, key, label=""):
    return Metric("table", f"test_{key}", file="results.json", records="runs",
                  where={"corpus": corpus, "backbone": backbone}, label=label)


def _rows():
    rows = []
    for corpus, published in SLOT_GATED.items():
        for key, value in zip(("intent_accuracy", "slot_f1"), published):
            rows.append(Row(f"{corpus}_{key}_beats_slot_gated",
                            _test(corpus, "bert_mini", key),
                            Published(value, "Goo et al. 2018", "Table 2",
                                      f"slot-gated (full attention), {corpus.upper()} test"),
                            at_least(abs=0.0), note=f"test {key.replace('_', ' ')}, 0-100"))
        rows.append(Row(f"{corpus}_pretraining_helps_slots",
                        _test(corpus, "bert_mini", "slot_f1"),
                        _test(corpus, "scratch", "slot_f1",
                              label="the same encoder from scratch, same recipe"),
                        at_least(abs=0.0), note="test slot F1, 0-100"))
        rows.append(Row(f"{corpus}_roberta_pretraining_helps_slots",
                        _test(corpus, "roberta_mini", "slot_f1"),
                        _test(corpus, "scratch", "slot_f1", label="BERT-mini's encoder from scratch"),
                        at_least(abs=0.0), note="test slot F1, 0-100"))
    return tuple(rows)


atis_snips = Study(
    name="atis_snips",
    title="ATIS and SNIPS joint intent and slots (JointBERT's recipe with its CRF) on BERT-mini "
          "and RoBERTa-mini pre-trained on WikiText-2, and from scratch, against slot-gated",
    readme="experiments/atis_snips/README.md",
    time_note="CPU: pre-training 46 and 54 min and ATIS 23 min measured (experiments/"
              "bert_pretraining, README.md); SNIPS estimated from ATIS's steps; GPU: an "
              "estimate, not measured",
    runs=_runs(),
    rows=_rows(),
)

STUDY = atis_snips
