"""SST-2 (GLUE layout): `glue/SST-2/{train,dev,test_labeled}.tsv` with header `sentence<TAB>label`.

Sentences are already tokenized and lower-cased (GLUE's release), so a sentence's tokens are its
whitespace-separated words.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from llm_jax.data.paths import require_file

SPLITS = {"train": "train.tsv", "dev": "dev.tsv", "test": "test_labeled.tsv"}


@dataclasses.dataclass
class SST2Split:
    sentences: list[list[str]]
    labels: np.ndarray  # int32[N], 0 negative / 1 positive

    def __len__(self) -> int:
        return len(self.sentences)

    def subset(self, n: int | None, seed: int = 0) -> SST2Split:
        """A random `n` examples (all of them when n is None or >= len), in a fixed order."""
        if n is None or n >= len(self):
            return self
        idx = np.sort(np.random.default_rng(seed).permutation(len(self))[:n])
        return SST2Split([self.sentences[i] for i in idx], self.labels[idx])


def read_sst2(split: str) -> SST2Split:
    """A split from $LLM_JAX_DATA_DIR/glue/SST-2 (MissingDataError if the file is absent)."""
    if split not in SPLITS:
        raise ValueError(f"SST-2 split {split!r}: expected one of {sorted(SPLITS)}")
    path = require_file("glue/SST-2", SPLITS[split])
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or lines[0].split("\t") != ["sentence", "label"]:
        raise ValueError(f"{path}: expected the header 'sentence<TAB>label', got {lines[:1]!r}")
    sentences, labels = [], []
    for n, line in enumerate(lines[1:], start=2):
        parts = line.rsplit("\t", 1)
        if len(parts) != 2 or parts[1] not in ("0", "1"):
            raise ValueError(f"{path}:{n}: expected 'sentence<TAB>0|1', got {line!r}")
        sentences.append(parts[0].split())
        labels.append(int(parts[1]))
    return SST2Split(sentences, np.asarray(labels, np.int32))
