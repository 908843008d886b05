"""CoNLL-2003 English NER on BERT-mini, RoBERTa-mini and from scratch:
`python -m llm_jax reproduce conll2003_ner`.

configs/ner_conll2003.py (BERT's recipe, section 5.3: each word tagged at its first sub-word,
3 epochs, batch 32, 128 sub-words, the best dev checkpoint by entity F1; the test split scored
at the end with the last state) on BERT-mini and RoBERTa-mini pre-trained here
(configs/bert_wikitext2.py:mini and roberta_mini, the runs of experiments/bert_pretraining) and
on BERT-mini's encoder from scratch. Entity-level F1
through seqeval in conlleval's reading (the default mode; task.strict=True for strict IOB2).
The check: pre-training helps on the test split.
"""

from llm_jax.reproduce import ConfigRun, Metric, Row, ScriptRun, Study, at_least

QUIET = {"train.progress_bar": False}  # the recorded runs wrote their logs to files


def _f1(backbone, label=""):
    """The backbone's test F1 in report.py's table (its seeds' mean)."""
    return Metric("table", "test_f1", file="results.json", records="rows",
                  where={"backbone": backbone}, label=label)


conll2003_ner = Study(
    name="conll2003_ner",
    title="CoNLL-2003 English NER on BERT-mini and RoBERTa-mini pre-trained on WikiText-2, and "
          "from scratch",
    readme="experiments/conll2003_ner/README.md",
    time_note="CPU: pre-training 46 and 54 min measured (experiments/bert_pretraining); fine-tuning an "
              "estimate (1,317 steps of 32 x 128) until measured; GPU: an estimate, not measured",
    runs=(
        ConfigRun("bert_mini", "configs/bert_wikitext2.py:mini", QUIET, cpu_minutes=50,
                  gpu_minutes=3),
        ConfigRun("ner_bert_mini", "configs/ner_conll2003.py:bert_mini",
                  {"init_from": "{bert_mini}", **QUIET}, cpu_minutes=25, gpu_minutes=3),
        ConfigRun("ner_scratch", "configs/ner_conll2003.py:scratch", QUIET, cpu_minutes=25,
                  gpu_minutes=3),
        ConfigRun("roberta_mini", "configs/bert_wikitext2.py:roberta_mini", QUIET,
                  cpu_minutes=55, gpu_minutes=3),
        # the hf variant reads RoBERTa's shape from its workdir; the rate stays bert_mini's
        ConfigRun("ner_roberta_mini", "configs/ner_conll2003.py:hf",
                  {"init_from": "{roberta_mini}", "data.tokenizer": "roberta_bpe",
                   "optimizer.lr": 5e-5, **QUIET}, cpu_minutes=25, gpu_minutes=3),
        ScriptRun("table", ("experiments/conll2003_ner/report.py",
                            "--workdirs={ner_bert_mini},{ner_roberta_mini},{ner_scratch}",
                            "--out={out}"),
                  outputs=("results.json", "results.md", "scores.png"), cpu_minutes=1,
                  gpu_minutes=1),
    ),
    rows=(
        Row("pretraining_helps", _f1("bert_mini"),
            _f1("scratch", "the same encoder from scratch, same recipe"),
            at_least(abs=0.0), note="test entity F1 (0-100, conlleval reading)"),
        Row("roberta_pretraining_helps", _f1("roberta_mini"),
            _f1("scratch", "BERT-mini's encoder from scratch"),
            at_least(abs=0.0), note="test entity F1 (0-100, conlleval reading)"),
    ),
)

STUDY = conll2003_ner
