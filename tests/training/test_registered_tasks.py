"""New families plug into the unchanged trainer: a task and a model registered from outside.

1. A 2-layer encoder-only tagger on padded examples of different lengths: its eval mean is
   the per-token mean over real tokens only, not a mean of per-batch means.
2. Fine-tuning starts: a GPT workdir's parameters start a GPT with a new classification head
   (config.init_from), the backbone frozen by a parameter group, the best checkpoint by dev
   accuracy kept beside the latest.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from llm_jax import models, ops, tasks
from llm_jax.layers import BlockConfig, Embed, EncoderStack, LearnedPositions
from llm_jax.layers.params import normal, param
from llm_jax.models import gpt
from llm_jax.tasks.protocols import NUM_TOKENS, CarryTask, Task, mean_metric
from llm_jax.training.config_schema import default_config
from llm_jax.training.experiment import Experiment
from llm_jax.training.init_from import read_source_params
from llm_jax.training.metrics import read_metrics
from llm_jax.training.optimizer import param_group
from llm_jax.training.trainer import BEST_DIR, evaluate, train
from tests.conftest import load_config

VOCAB, MAX_LEN = 12, 16


class Examples:
    """Endless shuffled batches of variable-length examples, right-padded; resumable."""

    def __init__(self, examples, batch_size, seed):
        self.examples, self.batch_size, self.seed, self.index = examples, batch_size, seed, 0

    def __iter__(self):
        return self

    def __next__(self):
        rng = np.random.default_rng([self.seed, self.index])
        self.index += 1
        return pad([self.examples[i] for i in rng.choice(len(self.examples), self.batch_size)])

    def get_state(self):
        return {"index": self.index}

    def set_state(self, state):
        self.index = state["index"]


def pad(examples):
    """{"inputs", "labels": int32[B, T], "mask": bool[B, T]} with T the longest example."""
    T = max(len(x) for x, _ in examples)
    batch = {"inputs": np.zeros((len(examples), T), np.int32),
             "labels": np.zeros((len(examples), T), np.int32),
             "mask": np.zeros((len(examples), T), bool)}
    for b, (x, y) in enumerate(examples):
        batch["inputs"][b, :len(x)], batch["labels"][b, :len(x)], batch["mask"][b, :len(x)] = x, y, True
    return batch


def tagging_examples(n, seed):
    """Tag each token with its parity (quick to learn: the point is the padded evaluation)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.integers(1, VOCAB, rng.integers(2, MAX_LEN + 1))
        out.append((x, x % 2))
    return out


class PaddedTagging:
    """Token tagging over padded examples: metrics are (sum, weight) pairs over real tokens."""

    reports_token_nll = False

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict(dict(name="padded_tagging"))

    def __init__(self, config, workdir):
        self.train_examples = tagging_examples(256, 0)
        self.eval_examples = tagging_examples(19, 1)  # 19: the last batch of 4 is a short one

    vocab_size = VOCAB

    def train_batches(self, batch_size, seed):
        return Examples(self.train_examples, batch_size, seed)

    def eval_batches(self, batch_size, max_batches=None, tokens=None):
        chunks = [self.eval_examples[i:i + batch_size]
                  for i in range(0, len(self.eval_examples), batch_size)]
        return (pad(c) for c in chunks[:max_batches])

    def split_tokens(self, split):
        raise NotImplementedError

    @staticmethod
    def saved_tokenizer(config, workdir):
        raise NotImplementedError

    def token_nlls(self, model, batch):
        logits = model(batch["inputs"], batch["mask"])
        return ops.cross_entropy_per_token(logits, batch["labels"])[1], logits

    def loss(self, model, batch, dropout_key=None):
        nll, logits = self.token_nlls(model, batch)
        correct = (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)
        total, weight = mean_metric(nll, batch["mask"])
        return total / weight, {"loss": (total, weight), "accuracy": mean_metric(correct, batch["mask"]),
                                NUM_TOKENS: jnp.sum(batch["mask"]).astype(jnp.float32)}


class TinyEncoder(nnx.Module):
    """Embeddings, a 2-layer bidirectional encoder with a padding mask, a per-token head."""

    def __init__(self, cfg, *, rngs):
        block = BlockConfig(embed_dim=cfg.embed_dim, num_heads=2, mlp_dim=2 * cfg.embed_dim,
                            num_layers=2, pre_ln=False)
        self.embed = Embed(VOCAB, cfg.embed_dim, rngs=rngs)
        self.positions = LearnedPositions(MAX_LEN, cfg.embed_dim, rngs=rngs)
        self.stack = EncoderStack(block, rngs=rngs)
        self.head = param(normal(0.02), rngs.params(), (cfg.embed_dim, 2), ("embed", "vocab"))

    def __call__(self, tokens_BT, valid_BT):
        x = self.embed(tokens_BT) + self.positions(jnp.arange(tokens_BT.shape[1]))
        x = self.stack(x, mask=ops.padding_mask(valid_BT))
        return x @ self.head[...]


def tiny_encoder_config():
    return ml_collections.ConfigDict(dict(name="tiny_encoder", embed_dim=16, vocab_size=0))


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(tasks.TASKS, "padded_tagging", PaddedTagging)
    monkeypatch.setitem(models.MODELS, "tiny_encoder", (TinyEncoder, tiny_encoder_config))


def test_protocols_are_satisfied():
    assert isinstance(PaddedTagging(None, None), Task)
    assert not isinstance(PaddedTagging(None, None), CarryTask)


def test_encoder_on_padded_examples_evaluates_the_exact_token_mean(registered, tmp_path):
    c = default_config("tiny_encoder", "padded_tagging")
    c.optimizer.update(lr=1e-2, warmup_steps=0, schedule="constant")
    c.train.update(steps=40, batch_size=4, eval_every=40, log_every=10, progress_bar=False)
    summary = train(c, str(tmp_path / "run"))
    assert summary["eval/accuracy"] > 0.7 and "eval/perplexity" not in summary

    exp = Experiment(c, str(tmp_path / "run"))
    state, _ = exp.checkpointer.restore(exp.spec.abstract)
    model = nnx.merge(exp.spec.graphdef, state["params"])
    # Reference: each eval example alone, without any padding, every token NLL pooled.
    alone = [np.asarray(exp.task.token_nlls(model, pad([ex]))[0][0], np.float64)
             for ex in exp.task.eval_examples]
    exact = np.concatenate(alone).mean()
    got = evaluate(exp, state["params"])["eval/loss"]
    # float32 sums in another order and attention over other key lengths: ~1e-7 apart. A mean of
    # per-batch means (what padding breaks) is off by orders of magnitude more.
    assert got == pytest.approx(exact, rel=2e-6, abs=1e-7)
    per_batch = [np.mean(np.concatenate(alone[i:i + 4])) for i in range(0, 19, 4)]
    assert abs(np.mean(per_batch) - exact) > 100 * abs(got - exact)


class GPTClassifier(gpt.GPT):
    """GPT's last real token's logits -> a new class head (a fine-tuning model in miniature)."""

    def __init__(self, cfg, *, rngs):
        super().__init__(cfg, rngs=rngs)
        self.cls_head = param(normal(0.02), rngs.params(), (cfg.vocab_size, 2), ("vocab", None))

    def classify(self, tokens_BT, lengths_B):
        logits_BTV = self(tokens_BT)
        last_BV = jnp.take_along_axis(logits_BTV, (lengths_B - 1)[:, None, None], axis=1)[:, 0]
        return last_BV @ self.cls_head[...]


def gpt_classifier_config():
    c = gpt.default_config()
    c.name = "gpt_cls"
    return c


class FirstTokenClass(PaddedTagging):
    """One label per sequence: is its first character in the upper half of the vocabulary."""

    reports_token_nll = False

    @staticmethod
    def default_config():
        return ml_collections.ConfigDict(dict(name="first_token_class"))

    vocab_size = 65

    def __init__(self, config, workdir):
        rng = np.random.default_rng(0)
        self.train_examples, self.eval_examples = [], []
        for target, n in ((self.train_examples, 256), (self.eval_examples, 32)):
            for _ in range(n):
                x = rng.integers(0, 65, rng.integers(2, 12))
                target.append((x, np.full(len(x), int(x[0] >= 32))))

    def loss(self, model, batch, dropout_key=None):
        lengths = jnp.sum(batch["mask"], 1)
        logits = model.classify(batch["inputs"], lengths)
        labels = batch["labels"][:, 0]
        nll = ops.cross_entropy_per_token(logits, labels)[1]
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return jnp.mean(nll), {"loss": mean_metric(nll), "accuracy": mean_metric(correct),
                               NUM_TOKENS: jnp.sum(lengths).astype(jnp.float32)}


def test_init_from_a_gpt_workdir_with_a_new_head_and_a_frozen_backbone(real_data_dir, monkeypatch,
                                                                       tmp_path):
    source = load_config("gpt_shakespeare", "tiny")
    source.train.update(steps=4, eval_every=4, checkpoint_every=4, progress_bar=False)
    train(source, str(tmp_path / "lm"))
    monkeypatch.setitem(tasks.TASKS, "first_token_class", FirstTokenClass)
    monkeypatch.setitem(models.MODELS, "gpt_cls", (GPTClassifier, gpt_classifier_config))

    c = default_config("gpt_cls", "first_token_class")
    with open(tmp_path / "lm" / "config.json") as f:
        c.model.update({k: v for k, v in json.load(f)["model"].items() if k != "name"})
    c.data.seq_len = 12  # the task pads to its longest example; seq_len only bounds it
    c.init_from = str(tmp_path / "lm")
    c.optimizer.update(lr=1e-2, warmup_steps=0, schedule="constant",
                       param_groups=(param_group(r"^(embed|positions|stack|final_ln)/", frozen=True),))
    c.train.update(steps=12, batch_size=8, eval_every=2, log_every=2, checkpoint_every=12,
                   best_metric="eval/accuracy", progress_bar=False)
    run = tmp_path / "cls"
    train(c, str(run))

    with open(run / "init_from.json") as f:
        report = json.load(f)
    backbone = read_source_params(str(tmp_path / "lm"))
    n_backbone = len(jax.tree.leaves(backbone))
    assert report["new"] == ["cls_head"] and len(report["loaded"]) == n_backbone
    assert report["left_out"] == [] and report["mismatched"] == []

    tuned = read_source_params(str(run))
    for path, leaf in jax.tree_util.tree_flatten_with_path(backbone)[0]:
        np.testing.assert_array_equal(_at(tuned, path), leaf)  # bitwise: frozen
    fresh = read_source_params(str(run / "checkpoints" / "12"))["cls_head"]
    assert np.abs(fresh).max() > 0

    evals = [r for r in read_metrics(run / "metrics.jsonl") if "eval/accuracy" in r]
    best = max(evals, key=lambda r: r["eval/accuracy"])  # max() keeps the first of a tie
    assert os.listdir(run / BEST_DIR) == [str(best["step"])]


def _at(tree, path):
    for k in path:
        tree = tree[k.key]
    return tree
