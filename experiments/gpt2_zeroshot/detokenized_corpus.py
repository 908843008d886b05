"""WikiText-2 as plain text: the corpus a GPT is trained on here before the zero-shot harness.

  python experiments/gpt2_zeroshot/detokenized_corpus.py --out=runs/wikitext2_detok

`lm-eval --task=wikitext2` scores the test split after the GPT-2 paper's detokeniser
(llm_jax/evaluation/detokenizers.py), because GPT-2 was trained on natural text. A model
trained here on the pre-tokenised files (" @-@ ", " , ", "( x )") would be scored on a form of
text it never saw. This writes train.txt, valid.txt and test.txt, each split of
LLM_JAX_DATA_DIR/wikitext-2 passed through the same detokeniser, as a corpus directory that
`--config.data.corpus=DIR` reads. The test split is written too but never trained on.
"""

import argparse
import os
import pathlib

from llm_jax.data.corpora import read_corpus
from llm_jax.evaluation.detokenizers import wikitext_detokenize

SPLITS = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join("runs", "wikitext2_detok"),
                   help="the corpus directory to write")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, name in SPLITS.items():
        text = wikitext_detokenize(read_corpus("wikitext-2", split))
        # written whole then renamed: an interrupted run leaves no half file to train on
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        print(f"{out / name}: {len(text):,} characters, {len(text.split()):,} words")


if __name__ == "__main__":
    main()
