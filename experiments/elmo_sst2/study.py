"""ELMo on SST-2 as a check: `python -m llm_jax reproduce elmo_sst2`.

The pipeline of README.md beside this file: pre-train the small biLM, export it, train word2vec
(the README table's word2vec row), then the SST-2 classifiers of run.py. The check is the
paper's claim in its own form (Peters et al. 2018, section 3.3: ELMo concatenated with the
token embedding): the ELMo-fed classifier beats the same classifier on random-init embeddings,
both trained in the same run on the same phrases and seeds (mean dev accuracy of 3 seeds).
"""

from llm_jax.reproduce import ConfigRun, Metric, Row, ScriptRun, Study, at_least

RESULTS = "results.json"


def _row(name, label=""):
    return Metric("sst2", "dev_accuracy", file=RESULTS, records="rows", where={"name": name},
                  scale=100, label=label)


elmo_sst2 = Study(
    name="elmo_sst2",
    title="ELMo (small biLM, 1 epoch of WikiText-2) feeding an SST-2 classifier, vs random embeddings",
    readme="experiments/elmo_sst2/README.md",
    time_note="CPU: biLM 240 s, SST-2 354 s measured here (report_elmo_sst2.json); GPU: an "
              "estimate, not measured",
    runs=(
        ConfigRun("bilm", "configs/elmo.py:small", cpu_minutes=5, gpu_minutes=3),
        ScriptRun("bilm_export", ("-m", "llm_jax", "export", "--workdir={bilm}", "--out={out}"),
                  outputs=("params.npz", "model.json", "vocab.json"), cpu_minutes=0.5, gpu_minutes=0.5),
        ConfigRun("word2vec", "configs/word2vec.py:sg_neg", cpu_minutes=1, gpu_minutes=1),
        ScriptRun("sst2", ("experiments/elmo_sst2/run.py", "--bilm={bilm_export}",
                           "--word2vec={word2vec}/vectors.bin", "--train_subset=20000", "--epochs=8",
                           "--lr=3e-3", "--seeds=0,1,2", f"--out={{out}}/{RESULTS}"),
                  outputs=(RESULTS,), cpu_minutes=7, gpu_minutes=4),
    ),
    rows=(
        Row("elmo_plus_embedding_vs_embedding",
            _row("random init embeddings + ELMo scalar mix, concatenated *"),
            _row("random init embeddings (*",
                 label="the same classifier on random-init embeddings alone, same seeds"),
            at_least(abs=0.0),
            note="dev accuracy in %, mean of 3 seeds; README: 76.72 vs 76.11"),
    ),
)

STUDY = elmo_sst2
