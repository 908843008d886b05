"""ELMo on SST-2 through the GLUE task: `python -m llm_jax reproduce elmo_sst2`.

The pipeline of README.md beside this file: pre-train the small biLM (configs/elmo.py:small),
then configs/glue.py:elmo on SST-2 (the frozen biLM, a trained scalar mix of its 3 layers, the
mean over the words, the classification head), 3 seeds, with the same SST-2 settings as the
glue study's (64 words, one epoch: experiments/glue/study.py), and experiments/glue/report.py's
table. The checks: the pre-trained biLM beats the same frozen biLM from random weights (only
the mix and the head train in both, so this is what pre-training put into the layers), and the
ELMo classifier is as good as the private training loop this experiment had before (its
frozen-ELMo row, 71.03, mean of 3 seeds).
"""

from llm_jax.reproduce import ConfigRun, Metric, Published, Row, ScriptRun, Study, at_least

RESULTS = "results.json"
QUIET = {"train.progress_bar": False}  # the recorded runs wrote their logs to files
SST2 = {"data.seq_len": 64, "train.epochs": 1}  # experiments/glue/study.py's SST-2 settings
SEEDS = (0, 1, 2)


def _sst2_runs():
    runs = []
    for seed in SEEDS:
        extra = {"seed": seed} if seed else {}
        runs.append(ConfigRun(f"sst2_elmo_seed{seed}", "configs/glue.py:elmo,sst2",
                              {"init_from": "{bilm}", **SST2, **QUIET, **extra},
                              cpu_minutes=12, gpu_minutes=2))
        runs.append(ConfigRun(f"sst2_random_bilm_seed{seed}", "configs/glue.py:elmo,sst2",
                              {**SST2, **QUIET, **extra}, cpu_minutes=12, gpu_minutes=2))
    return tuple(runs)


SST2_RUNS = _sst2_runs()


def _accuracy(backbone, label=""):
    return Metric("table", "dev_score", file=RESULTS, records="rows",
                  where={"task": "sst2", "backbone": backbone}, label=label)


elmo_sst2 = Study(
    name="elmo_sst2",
    title="ELMo (small biLM, 1 epoch of WikiText-2, frozen) on SST-2 through the GLUE task, vs "
          "the same biLM from random weights",
    readme="experiments/elmo_sst2/README.md",
    time_note="CPU: biLM 240 s measured here (report_elmo_sst2_private_loop.json); SST-2 runs an "
              "estimate until measured; GPU: an estimate, not measured",
    runs=(
        ConfigRun("bilm", "configs/elmo.py:small", QUIET, cpu_minutes=5, gpu_minutes=3),
        *SST2_RUNS,
        ScriptRun("table", ("experiments/glue/report.py",
                            "--workdirs=" + ",".join(f"{{{r.name}}}" for r in SST2_RUNS),
                            "--out={out}"),
                  outputs=(RESULTS, "results.md", "scores.png"), cpu_minutes=1, gpu_minutes=1),
    ),
    rows=(
        Row("elmo_vs_random_bilm", _accuracy("bilm"),
            _accuracy("scratch_elmo", label="the same frozen biLM from random weights, same "
                                            "seeds"),
            at_least(abs=0.0), note="SST-2 dev accuracy in %, mean of 3 seeds"),
        Row("as_good_as_the_private_loop", _accuracy("bilm"),
            Published(71.03, "this experiment's earlier private loop (run.py)",
                      "results_private_loop.json", "ELMo scalar mix (frozen), mean of 3 seeds"),
            at_least(abs=0.0), note="SST-2 dev accuracy in %, mean of 3 seeds"),
    ),
)

STUDY = elmo_sst2
