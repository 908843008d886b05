"""GLUE on this project's backbones: `python -m llm_jax reproduce glue`.

One sweep of configs/glue.py over the GLUE tasks with a train file in ../shared/data/glue
(RTE, MRPC, STS-B, CoLA, WNLI, SST-2; QNLI has only its dev set there) x the backbones
pre-trained here (BERT-mini and RoBERTa-mini, configs/bert_wikitext2.py, the pre-training runs
of experiments/bert_pretraining; ELMo's small biLM; the small character GPT) and BERT-mini's
encoder from scratch, then report.py's table.
Every run is BERT's fine-tuning recipe as configs/glue.py sets it (3 epochs, batch 32, best dev
checkpoint), except that SST-2 trains one epoch (TASKS says why); the single-sentence tasks
(CoLA, SST-2) read 64 WordPiece tokens instead of 128, which halves their time (report.py
counts the dev sentences longer than that).

The check is the claim pre-training exists for: a pre-trained backbone beats the same encoder
trained from scratch on the same task with the same recipe and seed.
"""

from llm_jax.reproduce import ConfigRun, Metric, Published, Row, ScriptRun, Study, at_least

RESULTS = "results.json"
# task -> (overrides, CPU minutes of one run: measured for the BERT-family backbones, 4.3-9.9
# (results.json); SST-2, ELMo and GPT not yet, SST-2 estimated from CoLA's steps at 64 tokens)
TASKS = {
    "rte": ({}, 5),
    "mrpc": ({}, 6),
    "stsb": ({}, 10),
    "wnli": ({}, 1.5),
    "cola": ({"data.seq_len": 64}, 6),
    # one epoch, not three: SST-2's 67k phrases give 2,105 steps in one, more than any other
    # task here gets in three, and three epochs of every backbone and seed would take 7 hours
    "sst2": ({"data.seq_len": 64, "train.epochs": 1}, 15),
}
QUIET = {"train.progress_bar": False}  # the recorded runs wrote their logs to files
# backbone -> (configs/glue.py variant, overrides)
BACKBONES = {
    "bert_mini": ("bert_mini", {"init_from": "{bert_mini}"}),
    # the hf variant reads the backbone's shape (RoBERTa's position offset, BPE vocabulary)
    # from the pre-trained workdir; the learning rate stays bert_mini's, not hf's bert-base 2e-5
    "roberta_mini": ("hf", {"init_from": "{roberta_mini}", "data.tokenizer": "roberta_bpe",
                            "optimizer.lr": 5e-5}),
    "scratch": ("scratch", {}),
    # ELMo's frozen biLM with a trained scalar mix (configs/elmo.py:small, word inputs) and
    # GPT-1's recipe on the character-level GPT of configs/gpt_shakespeare.py:cpu: both read
    # 64 of their own tokens (words, characters) on every task
    "elmo_small": ("elmo", {"init_from": "{elmo_small}"}),
    "gpt_small": ("gpt", {"init_from": "{gpt_small}"}),
}
SST2_SEEDS = (0, 1, 2)


def _finetune_runs():
    """Task by task, each task's backbones side by side (a stopped sweep leaves whole
    comparisons), SST-2's three seeds last: it takes longer than all the others together."""
    runs = []
    for task, (task_overrides, minutes) in TASKS.items():
        for seed in SST2_SEEDS if task == "sst2" else (0,):
            for backbone, (variant, backbone_overrides) in BACKBONES.items():
                name = f"{task}_{backbone}" + (f"_seed{seed}" if task == "sst2" else "")
                overrides = {**backbone_overrides, **task_overrides, **QUIET}
                if seed:
                    overrides["seed"] = seed
                runs.append(ConfigRun(name, f"configs/glue.py:{variant},{task}", overrides,
                                      cpu_minutes=minutes, gpu_minutes=2))
    return tuple(runs)


FINETUNE_RUNS = _finetune_runs()


def _score(task, backbone, label=""):
    return Metric("table", "dev_score", file=RESULTS, records="rows",
                  where={"task": task, "backbone": backbone}, label=label)


def _beats_scratch(task, backbone):
    return Row(f"{task}_{backbone}_beats_scratch", _score(task, backbone),
               _score(task, "scratch", label="the same encoder from scratch, same recipe and seed"),
               at_least(abs=0.0), note="dev GLUE score (report.py: the task's metric, mean of "
                                       "seeds)")


glue = Study(
    name="glue",
    title="GLUE dev scores of BERT-mini and RoBERTa-mini pre-trained on WikiText-2, and of the "
          "same encoder from scratch",
    readme="experiments/glue/README.md",
    time_note="CPU: pre-training 46 and 54 min (experiments/bert_pretraining) and the "
              "BERT-family fine-tuning runs but SST-2's measured here (results.json); the rest "
              "estimated; GPU: an estimate, not measured",
    runs=(
        ConfigRun("bert_mini", "configs/bert_wikitext2.py:mini", QUIET, cpu_minutes=50,
                  gpu_minutes=3),
        ConfigRun("roberta_mini", "configs/bert_wikitext2.py:roberta_mini", QUIET,
                  cpu_minutes=60, gpu_minutes=3),
        ConfigRun("elmo_small", "configs/elmo.py:small", QUIET, cpu_minutes=5, gpu_minutes=3),
        ConfigRun("gpt_small", "configs/gpt_shakespeare.py:cpu", QUIET, cpu_minutes=1.5,
                  gpu_minutes=2),
        *FINETUNE_RUNS,
        ScriptRun("table", ("experiments/glue/report.py",
                            "--workdirs=" + ",".join(f"{{{r.name}}}" for r in FINETUNE_RUNS),
                            "--out={out}"),
                  outputs=(RESULTS, "results.md", "scores.png"), cpu_minutes=1, gpu_minutes=1),
    ),
    rows=(
        *(_beats_scratch(task, backbone) for task in TASKS if task != "wnli"
          for backbone in ("bert_mini", "roberta_mini")),
        Row("sst2_beats_kim_cnn", Metric("table", "best_sst2_dev_accuracy", file=RESULTS),
            Published(83.7, "Kim 2014", "Table 2, CNN-rand",
                      "a randomly initialised CNN; SST-2 test accuracy"),
            at_least(abs=0.0),
            note="SST-2 dev accuracy in % of the best backbone, mean of 3 seeds"),
    ),
)

STUDY = glue
