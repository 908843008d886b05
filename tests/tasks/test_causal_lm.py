"""The causal-LM task: tokenizer fitted once and saved with the run, any source, any tokenizer."""

import numpy as np
import pytest

from llm_jax.tasks import build_task
from llm_jax.training.trainer import train


def test_tokenizer_is_saved_and_reloaded(tiny_config, tmp_path):
    task = build_task(tiny_config, str(tmp_path))
    assert task.vocab_size == 65 and (tmp_path / "tokenizer" / "tokenizer.json").exists()
    again = build_task(tiny_config, str(tmp_path))
    np.testing.assert_array_equal(again.eval_tokens, task.eval_tokens)
    batch = next(iter(task.train_batches(4, 0)))
    np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])


@pytest.mark.real_data("ptb")
def test_word_level_ptb(tiny_config, tmp_path):
    tiny_config.data.update(corpus="ptb", tokenizer="word")
    task = build_task(tiny_config, str(tmp_path))
    assert task.vocab_size == 10000  # Mikolov's PTB vocabulary, <unk> and <eos> included
    assert len(task.train_tokens) == 887521 + 42068  # words + one <eos> per line


def test_trains_from_tfds_under_mock_data(tiny_config, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    tiny_config.data.update(source="tfds", tfds_name="lm1b", train_split="train",
                            eval_split="test", tokenizer="char")
    tiny_config.train.update(steps=4, batch_size=2, eval_every=4, eval_batches=1)
    tiny_config.data.seq_len = 8
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        summary = train(tiny_config, str(tmp_path))
    assert np.isfinite(summary["eval/loss"])


def test_unknown_source_and_task_are_named(tiny_config, tmp_path):
    tiny_config.data.source = "s3"
    with pytest.raises(ValueError, match="data.source"):
        build_task(tiny_config, str(tmp_path))
    tiny_config.task.name = "mlm"
    with pytest.raises(ValueError, match="task.name"):
        build_task(tiny_config, str(tmp_path))
