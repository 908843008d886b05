"""BERT-mini pre-training, BERT's recipe against RoBERTa's: `python -m llm_jax reproduce bert_pretraining`.

The runs of README.md beside this file (configs/bert_wikitext2.py:mini and :roberta_mini,
2,000 steps of 32 x 128 on WikiText-2 each, and mini without NSP for half of its schedule) and
report.py's table. There is no published
number for a 4-layer BERT trained for 8.2M positions on WikiText-2, so the checks are the
claims each recipe must show at any scale: the masked LM beats the unigram distribution of its
own training split on the same masked tokens (it learned context, not only frequencies), and
the next-sentence head beats chance on the test split's pairs.
"""

from llm_jax.reproduce import ConfigRun, Metric, Published, Row, ScriptRun, Study, at_least

RESULTS = "results.json"
BERT, ROBERTA, NO_NSP = "BERT-mini (MLM+NSP)", "RoBERTa-mini (MLM)", "BERT-mini without NSP"
# BERT's recipe with the sentence task taken out, for the first half of mini's schedule (the
# same learning rate at every step: decay_steps is the full run's): step 1,000 of both runs is
# the comparison; 1,001 steps, so that step 1,000's evaluation is the periodic one, like mini's
NO_NSP_OVERRIDES = {"task.sentence_task": "", "model.sentence_head": "", "train.steps": 1001,
                    "optimizer.decay_steps": 2000}


def _metric(name, key, label=""):
    return Metric("table", key, file=RESULTS, records="rows", where={"name": name}, scale=100,
                  label=label)


bert_pretraining = Study(
    name="bert_pretraining",
    title="BERT-mini pre-trained on WikiText-2 with BERT's recipe (MLM + NSP, static masks) and "
          "with RoBERTa's (MLM alone, FULL-SENTENCES, dynamic masks)",
    readme="experiments/bert_pretraining/README.md",
    time_note="CPU: measured here (results.json wall_minutes); GPU: an estimate, not measured",
    runs=(
        ConfigRun("bert_mini", "configs/bert_wikitext2.py:mini", cpu_minutes=50, gpu_minutes=3),
        ConfigRun("roberta_mini", "configs/bert_wikitext2.py:roberta_mini", cpu_minutes=60,
                  gpu_minutes=3),
        ConfigRun("bert_mini_no_nsp", "configs/bert_wikitext2.py:mini", NO_NSP_OVERRIDES,
                  cpu_minutes=25, gpu_minutes=2),
        ScriptRun("table", ("experiments/bert_pretraining/report.py",
                            "--workdirs={bert_mini},{roberta_mini},{bert_mini_no_nsp}",
                            f"--labels={BERT},{ROBERTA},{NO_NSP}", "--out={out}"),
                  outputs=(RESULTS, "results.md", "curves.png"), cpu_minutes=2, gpu_minutes=1),
    ),
    rows=(
        Row("bert_mlm_beats_unigram", _metric(BERT, "test_mlm_accuracy"),
            _metric(BERT, "test_unigram_mlm_accuracy",
                    label="the training split's most frequent token, same masked tokens"),
            at_least(abs=0.0), note="test masked-LM accuracy in %"),
        Row("roberta_mlm_beats_unigram", _metric(ROBERTA, "test_mlm_accuracy"),
            _metric(ROBERTA, "test_unigram_mlm_accuracy",
                    label="the training split's most frequent token, same masked tokens"),
            at_least(abs=0.0), note="test masked-LM accuracy in %"),
        Row("no_nsp_mlm_as_good", _metric(NO_NSP, "step1000_valid_mlm_accuracy"),
            _metric(BERT, "step1000_valid_mlm_accuracy", label="BERT-mini with NSP, step 1,000"),
            at_least(abs=1.0),
            note="validation masked-LM accuracy in % at step 1,000 of one schedule; RoBERTa "
                 "(Liu et al. 2019, section 4.2): without NSP, as good or better"),
        Row("nsp_beats_chance", _metric(BERT, "test_sentence_accuracy"),
            Published(50.0, "Devlin et al. 2019", "section 3.1, task #2",
                      "chance: B is the next segment for half of the pairs"),
            at_least(abs=0.0), note="test next-sentence accuracy in %"),
    ),
)

STUDY = bert_pretraining
