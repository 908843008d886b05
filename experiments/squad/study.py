"""SQuAD v1.1 extractive QA on BERT-mini, RoBERTa-mini and from scratch:
`python -m llm_jax reproduce squad`.

configs/squad.py (Hugging Face run_qa.py's recipe: windows of 384 tokens sharing 128, 2 epochs,
n-best 20, answers of at most 30 tokens) on BERT-mini and RoBERTa-mini pre-trained here
(configs/bert_wikitext2.py:mini and roberta_mini, the runs of experiments/bert_pretraining) and
on BERT-mini's encoder from scratch. NOT the official protocol: ../shared/data/squad has only
the dev set, so all train on its first 38 articles (8,582 questions) and are scored on its last
10 (1,988 questions), EM and F1 with the official evaluate-v1.1 normalisation (every table says
so). The check: pre-training helps, the held-out F1 of the best checkpoint above the same
model's from scratch.
"""

from llm_jax.reproduce import ConfigRun, Metric, Row, ScriptRun, Study, at_least

QUIET = {"train.progress_bar": False}  # the recorded runs wrote their logs to files


def _f1(backbone, label=""):
    """The backbone's held-out F1 at its best checkpoint, in report.py's table."""
    return Metric("table", "f1", file="results.json", records="rows",
                  where={"backbone": backbone}, label=label)


squad = Study(
    name="squad",
    title="SQuAD v1.1 (train: dev articles 1-38, eval: 39-48) on BERT-mini and RoBERTa-mini "
          "pre-trained on WikiText-2, and from scratch",
    readme="experiments/squad/README.md",
    time_note="CPU: pre-training 46 and 54 min measured (experiments/bert_pretraining); fine-tuning an "
              "estimate (550 steps of 32 x 384) until measured; GPU: an estimate, not measured",
    runs=(
        ConfigRun("bert_mini", "configs/bert_wikitext2.py:mini", QUIET, cpu_minutes=50,
                  gpu_minutes=3),
        ConfigRun("squad_bert_mini", "configs/squad.py:bert_mini",
                  {"init_from": "{bert_mini}", **QUIET}, cpu_minutes=35, gpu_minutes=3),
        ConfigRun("squad_scratch", "configs/squad.py:scratch", QUIET, cpu_minutes=35,
                  gpu_minutes=3),
        ConfigRun("roberta_mini", "configs/bert_wikitext2.py:roberta_mini", QUIET,
                  cpu_minutes=55, gpu_minutes=3),
        # the hf variant reads RoBERTa's shape from its workdir; the rate stays bert_mini's
        ConfigRun("squad_roberta_mini", "configs/squad.py:hf",
                  {"init_from": "{roberta_mini}", "data.tokenizer": "roberta_bpe",
                   "optimizer.lr": 1e-4, **QUIET}, cpu_minutes=35, gpu_minutes=3),
        ScriptRun("table", ("experiments/squad/report.py",
                            "--workdirs={squad_bert_mini},{squad_roberta_mini},{squad_scratch}",
                            "--out={out}"),
                  outputs=("results.json", "results.md", "scores.png"), cpu_minutes=1,
                  gpu_minutes=1),
    ),
    rows=(
        Row("pretraining_helps", _f1("bert_mini"),
            _f1("scratch", "the same encoder from scratch, same recipe"),
            at_least(abs=0.0), note="F1 (0-100) on the last 10 dev articles, best checkpoint"),
        Row("roberta_pretraining_helps", _f1("roberta_mini"),
            _f1("scratch", "BERT-mini's encoder from scratch"),
            at_least(abs=0.0), note="F1 (0-100) on the last 10 dev articles, best checkpoint"),
    ),
)

STUDY = squad
