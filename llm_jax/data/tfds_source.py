"""Text corpora from TensorFlow Datasets, through `tfds.data_source` (no TensorFlow needed).

`tfds.load` builds a tf.data pipeline and so needs TensorFlow; `tfds.data_source` reads
the prepared ArrayRecord files with random access and does not.
"""

from __future__ import annotations

import os
from typing import Any

# Data sets whose split is one document (tiny_shakespeare: one example per split holding
# the whole text); their examples are joined as they are. Elsewhere examples are lines or
# sentences (lm1b), joined with newlines.
SINGLE_DOCUMENT = frozenset({"tiny_shakespeare"})


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and not isinstance(value, bytes):  # numpy scalar / 0-d array
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise TypeError(f"Expected a text feature (str or bytes), got {type(value).__name__}.")


def read_tfds_text(
    name: str,
    split: str,
    feature: str = "text",
    data_dir: os.PathLike | str | None = None,
    *,
    separator: str | None = None,
) -> str:
    """Concatenate `feature` of every example of a TFDS split into one string.

    `separator` defaults to "" for single-document data sets and "\\n" otherwise.
    The data must already be prepared in ArrayRecord format in `data_dir`.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            "read_tfds_text needs TensorFlow Datasets: pip install llm_jax[tfds]"
        ) from e
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    if separator is None:
        separator = "" if name.split("/")[0].split(":")[0] in SINGLE_DOCUMENT else "\n"
    texts: list[str] = []
    for example in source:
        if feature not in example:
            raise KeyError(
                f"Feature {feature!r} is not in {name}/{split}; it has {sorted(example)}."
            )
        texts.append(_to_str(example[feature]))
    return separator.join(texts)
