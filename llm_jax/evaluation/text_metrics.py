"""Corpus BLEU (sacrebleu) and ROUGE (rouge-score), computed exactly as those packages do.

BLEU is scored on detokenised text with sacrebleu's default 13a tokenisation, cased and
lowercased; the signature says which, so a number can be compared with a paper's.
"""

import re


def bleu(hypotheses: list[str], references: list[str]) -> dict:
    """{"bleu", "bleu_lc"} (0-100) and their sacrebleu signatures."""
    from sacrebleu.metrics import BLEU

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    cased, lower = BLEU(), BLEU(lowercase=True)
    out = {"bleu": cased.corpus_score(hypotheses, [references]).score,
           "bleu_lc": lower.corpus_score(hypotheses, [references]).score}
    out["bleu_signature"] = str(cased.get_signature())
    out["bleu_lc_signature"] = str(lower.get_signature())
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> str:
    """Sentences one per line, for ROUGE-Lsum (which scores summary-level LCS over lines)."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def rouge(hypotheses: list[str], references: list[str]) -> dict:
    """Mean F1 (0-100) of ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum, Porter-stemmed."""
    from rouge_score import rouge_scorer

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    kinds = ("rouge1", "rouge2", "rougeL", "rougeLsum")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for hyp, ref in zip(hypotheses, references):
        scores = scorer.score(split_sentences(ref), split_sentences(hyp))
        for k in kinds:
            totals[k] += scores[k].fmeasure
    n = max(len(hypotheses), 1)
    return {k: 100.0 * v / n for k, v in totals.items()}
