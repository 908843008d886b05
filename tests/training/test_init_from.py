"""Initialising a run from another run's checkpoint: matching by path and shape, reading only
the params of a real Orbax checkpoint without the source's config, and the report."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm_jax.training import sharding
from llm_jax.training.checkpoints import Checkpointer
from llm_jax.training.config_schema import default_config
from llm_jax.training.init_from import (
    init_state_from,
    load_matching,
    read_source_params,
    write_report,
)
from llm_jax.training.optimizer import make_optimizer, model_param_axes, path_str
from llm_jax.training.state import make_state_spec


def flat(tree):
    return {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_load_matching_report_and_values():
    target = {"a": jnp.zeros((2, 3), jnp.bfloat16), "b": {"c": np.zeros(4, np.float32)},
              "cells": {0: {"w": np.zeros((2, 2), np.float32)}}, "d": np.zeros(5, np.float32)}
    source = {"a": np.full((2, 3), 1.5), "b": {"c": np.ones(3, np.float32)},
              "cells": {"0": {"w": np.full((2, 2), 2.0, np.float32)}}, "e": np.ones(1)}
    params, report = load_matching(target, source)
    assert report == {"loaded": ["a", "cells/0/w"], "new": ["b/c", "d"], "left_out": ["e"],
                      "mismatched": [("b/c", (3,), (4,))]}
    assert isinstance(params["a"], jax.Array) and params["a"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(params["a"], np.float32), 1.5)
    np.testing.assert_array_equal(params["cells"][0]["w"], 2.0)
    assert params["b"]["c"] is target["b"]["c"] and params["d"] is target["d"]
    assert jax.tree.structure(params) == jax.tree.structure(target)


def tiny_gpt(vocab=11, layers=2):
    c = default_config("gpt")
    c.model.update(num_layers=layers, num_heads=2, embed_dim=16, max_len=8, vocab_size=vocab)
    opt = make_optimizer(c.optimizer, 10, param_axes=model_param_axes(c.model))
    return make_state_spec(c.model, opt, sharding.make_mesh(c.mesh), seed=0)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A workdir with checkpoints at steps 3 and 5 (different params), as the trainer writes."""
    workdir = tmp_path_factory.mktemp("source")
    spec = tiny_gpt()
    state = spec.init()
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    ckpt.save(3, state, {"position": 3})
    later = {**state, "params": jax.tree.map(lambda x: x + 1.0, state["params"]),
             "step": state["step"] + 5}
    ckpt.save(5, later, {"position": 5})
    ckpt.close()
    return str(workdir), jax.device_get(state["params"]), jax.device_get(later["params"])


def test_read_source_params_from_workdir_and_step_dir(source_run):
    workdir, at3, at5 = source_run
    latest = read_source_params(workdir)
    assert set(flat(latest)) == set(flat(at5))  # params only, nothing of opt_state
    for p, x in flat(latest).items():
        assert isinstance(x, np.ndarray)
        np.testing.assert_array_equal(x, flat(at5)[p])
    step3 = read_source_params(os.path.join(workdir, "checkpoints", "3"))
    for p, x in flat(step3).items():
        np.testing.assert_array_equal(x, flat(at3)[p])
    # the checkpoints/ directory itself works as well
    assert set(flat(read_source_params(os.path.join(workdir, "checkpoints")))) == set(flat(at5))


def test_bad_source_paths_are_named(tmp_path):
    for path in (tmp_path / "missing", tmp_path):
        with pytest.raises(FileNotFoundError, match=f"init_from {path}: not a training workdir"):
            read_source_params(path)
    (tmp_path / "checkpoints" / "7").mkdir(parents=True)  # a step directory without state
    with pytest.raises(FileNotFoundError, match="not a training workdir"):
        read_source_params(tmp_path / "checkpoints" / "7")


def test_init_state_from_a_model_with_another_vocabulary(source_run, tmp_path):
    workdir, _, at5 = source_run
    spec = tiny_gpt(vocab=13)  # the embedding (tied with the output) changes shape
    fresh = spec.init()
    state = init_state_from(fresh, workdir, str(tmp_path))
    report = json.loads((tmp_path / "init_from.json").read_text())
    assert report["new"] == ["embed/table"] and report["left_out"] == []
    assert report["mismatched"] == [{"path": "embed/table", "source_shape": [11, 16],
                                     "target_shape": [13, 16]}]
    assert "loaded 15/16 parameters" in report["summary"]
    params = flat(state["params"])
    np.testing.assert_array_equal(params["embed/table"], flat(fresh["params"])["embed/table"])
    np.testing.assert_array_equal(params["stack/blocks/attn/qkv"],
                                  flat(at5)["stack/blocks/attn/qkv"])
    for p, x in params.items():  # placed as the fresh state was
        assert x.sharding == flat(spec.shardings["params"])[p]
    assert state["opt_state"] is fresh["opt_state"]


def test_nothing_matching_is_an_error(source_run, tmp_path):
    workdir, _, _ = source_run
    with pytest.raises(ValueError, match="no parameter matches"):
        init_state_from({"params": {"other": jnp.zeros(3)}}, workdir, str(tmp_path))


def test_write_report_summary(tmp_path):
    report = {"loaded": ["a"], "new": ["b", "c"], "left_out": ["d"],
              "mismatched": [("b", (1,), (2,))]}
    line = write_report(report, str(tmp_path), source="/runs/x")
    assert line == ("init_from: loaded 1/3 parameters from /runs/x; 2 fresh (b, c), "
                    "1 of another shape (b), 1 left out (d)")
    assert json.loads((tmp_path / "init_from.json").read_text())["source"] == "/runs/x"
