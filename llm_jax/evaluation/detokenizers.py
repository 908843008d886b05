"""Detokenisers for zero-shot perplexity: the text a pre-tokenised corpus came from, as the
GPT-2 paper's evaluation (and lm-evaluation-harness, Megatron-LM) rebuild it before a
byte-level BPE model scores it."""

import re
from collections.abc import Callable


def wikitext_detokenize(text: str) -> str:
    """WikiText's tokenisation undone, as lm-eval's wikitext task and Megatron-LM's zero-shot
    GPT-2 evaluation (tasks/zeroshot_gpt/detokenizer.py) undo it, rule for rule."""
    s = text.replace("s '", "s'")
    s = re.sub(r"/' [0-9]/", r"/'[0-9]/", s)  # a no-op in both sources (literal slashes); kept
    for tokenised, plain in ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" : ", ": "),
                             (" ; ", "; "), (" . ", ". "), (" ! ", "! "), (" ? ", "? "),
                             (" , ", ", ")):
        s = s.replace(tokenised, plain)
    s = re.sub(r"\(\s*([^\)]*?)\s*\)", r"(\1)", s)
    s = re.sub(r"\[\s*([^\]]*?)\s*\]", r"[\1]", s)
    s = re.sub(r"{\s*([^}]*?)\s*}", r"{\1}", s)
    s = re.sub(r"\"\s*([^\"]*?)\s*\"", r'"\1"', s)
    s = re.sub(r"'\s*([^']*?)\s*'", r"'\1'", s)
    for tokenised, plain in (("= = = =", "===="), ("= = =", "==="), ("= =", "=="),
                             (" \N{DEGREE SIGN} ", "\N{DEGREE SIGN}"), (" \n", "\n"),
                             ("\n ", "\n"), (" N ", " 1 "), (" 's", "'s")):
        s = s.replace(tokenised, plain)
    return s


def ptb_detokenize(text: str) -> str:
    """Mikolov's PTB tokenisation undone as Megatron-LM's GPT-2 zero-shot evaluation does it
    (tasks/zeroshot_gpt/detokenizer.py): clitics (" 's", " n't") rejoined, spaces at line ends
    dropped, the number token N read as "1" and "$ 1" / "# 1" joined. One fix: Megatron writes
    " N " as "1 ", which glues the number to the word before ("fell1 points") although its next
    rule expects "$ 1"; here every N standing alone becomes " 1 ", runs of them too. `<unk>`
    stays as written: nothing says which word it replaced."""
    for tokenised, plain in ((" '", "'"), (" \n", "\n"), ("\n ", "\n"), (" n't", "n't")):
        text = text.replace(tokenised, plain)
    text = re.sub(r"(?<= )N(?= )", "1", text)
    return text.replace("$ 1", "$1").replace("# 1", "#1")


DETOKENIZERS: dict[str, Callable[[str], str]] = {"wikitext": wikitext_detokenize,
                                                 "ptb": ptb_detokenize}
