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

from llm_jax.reproduce import ConfigRun, Metric, Row, Study, at_least

QUIET = {"train.progress_bar": False}  # the recorded runs wrote their logs to files

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
    ),
    rows=(
        Row("pretraining_helps", Metric("ner_bert_mini", "test/ner_f1"),
            Metric("ner_scratch", "test/ner_f1", label="the same encoder from scratch, same recipe"),
            at_least(abs=0.0), note="test entity F1 (0-100, conlleval reading)"),
        Row("roberta_pretraining_helps", Metric("ner_roberta_mini", "test/ner_f1"),
            Metric("ner_scratch", "test/ner_f1", label="BERT-mini's encoder from scratch"),
            at_least(abs=0.0), note="test entity F1 (0-100, conlleval reading)"),
    ),
)

STUDY = conll2003_ner
