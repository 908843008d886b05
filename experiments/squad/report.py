"""The SQuAD table and plot of extractive-QA workdirs (configs/squad.py runs).

    python experiments/squad/report.py --workdirs=runs/reproduce/squad/squad_bert_mini,... \
        --out=experiments/squad

Per backbone (seeds averaged, their range in brackets): EM and F1 of the best evaluation
(the checkpoint kept in checkpoints_best/), with the official evaluate-v1.1 normalisation.
By default these are NOT the official protocol (trained on dev articles 1-38, scored on 39-48:
configs/squad.py), so the gap to bert-base-uncased's dev EM / F1 (Hugging Face run_qa.py;
../shared/ANCHORS.md), in square brackets, is for scale only. Writes OUT/results.json,
OUT/results.md and OUT/scores.png (llm_jax/reproduce/backbone_table.py; --previous for earlier
results).
"""

from llm_jax.reproduce import backbone_table

COLUMNS = {"exact_match": "best:eval/squad_exact_match", "f1": "best:eval/squad_f1"}
REFERENCE = ("bert-base-uncased, official dev (HF run_qa.py)", {"exact_match": 81.22, "f1": 88.52})


def main(argv=None):
    return backbone_table.main(argv, description=__doc__.split("\n\n")[0], task="span_qa",
                               columns=COLUMNS, reference=REFERENCE,
                               title="SQuAD v1.1 (held-out dev articles 39-48)",
                               default_out="runs/squad_report")


if __name__ == "__main__":
    main()
