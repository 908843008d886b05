"""The CoNLL-2003 table and plot of NER workdirs (configs/ner_conll2003.py runs).

    python experiments/conll2003_ner/report.py \
        --workdirs=runs/reproduce/conll2003_ner/ner_bert_mini,... --out=experiments/conll2003_ner

Per backbone (seeds averaged, their range in brackets): the test split's entity precision,
recall and F1 at the end of training (the last state, as BERT reports it) and the best dev F1
(the checkpoint kept in checkpoints_best/), conlleval's reading through seqeval (or strict
IOB2 if the runs set task.strict), with the gap to BERT-base's test F1 (Devlin et al. 2019,
Table 7; ../shared/ANCHORS.md) in square brackets. Writes OUT/results.json, OUT/results.md
and OUT/scores.png (llm_jax/reproduce/backbone_table.py; --previous for earlier results).
"""

from llm_jax.reproduce import backbone_table

COLUMNS = {"test_precision": "test/ner_precision", "test_recall": "test/ner_recall",
           "test_f1": "test/ner_f1", "dev_f1_best": "best:eval/ner_f1"}
REFERENCE = ("BERT-base (Devlin et al. 2019, Table 7)", {"test_f1": 92.4})


def main(argv=None):
    return backbone_table.main(argv, description=__doc__.split("\n\n")[0], task="token_tagging",
                               columns=COLUMNS, reference=REFERENCE,
                               title="CoNLL-2003 English NER (entity level)",
                               default_out="runs/conll2003_ner_report")


if __name__ == "__main__":
    main()
