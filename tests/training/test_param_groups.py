"""Structural weight-decay mask, parameter groups (lr_mult, weight decay, frozen) and
layer-wise learning-rate decay in training/optimizer.py."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from llm_jax.models import build_model
from llm_jax.training import sharding
from llm_jax.training.config_schema import default_config
from llm_jax.training.optimizer import (
    decay_mask,
    layer_multipliers,
    make_optimizer,
    model_param_axes,
    opt_state_shardings,
    param_group,
    parse_param_groups,
    path_str,
)


def gpt_config(**opt):
    c = default_config("gpt")
    c.model.update(num_layers=2, num_heads=2, embed_dim=16, max_len=8, vocab_size=11)
    c.optimizer.update(warmup_steps=0, schedule="constant", **opt)
    return c


def rnn_model_config(cell):
    c = default_config("rnn_lm").model
    c.update(cell=cell, vocab_size=11, hidden_dim=8)
    return c


def flat(tree):
    return {path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def params_of(model_cfg, seed=0):
    return nnx.to_pure_dict(nnx.state(build_model(model_cfg, rngs=nnx.Rngs(params=seed))))


def run(opt, params, grads, steps=1):
    state = opt.init(params)

    update = jax.jit(opt.update)
    for _ in range(steps):
        # applied outside jit, so XLA cannot fold `p + 0` away and the update values count
        updates, state = update(grads, state, params)
        params = jax.tree.map(lambda p, u: np.asarray(p) + np.asarray(u), params, updates)
    return params


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_biases_are_not_decayed(cell):
    model = rnn_model_config(cell)
    abstract = nnx.eval_shape(lambda: build_model(model, rngs=nnx.Rngs(params=0)))
    mask = flat(decay_mask(nnx.to_pure_dict(nnx.state(abstract)), (), model_param_axes(model)))
    assert not mask["cells/0/b_in"] and not mask["cells/1/b_in"] and not mask["out_bias"]
    assert mask["cells/0/w_in"] and mask["cells/1/w_rec"] and mask["table"] and mask["out_kernel"]
    if cell == "gru":
        assert not mask["cells/0/b_rec"]


def test_stacked_biases_and_scales_are_not_decayed():
    c = gpt_config()
    axes = model_param_axes(c.model)
    params = nnx.to_pure_dict(nnx.state(nnx.eval_shape(
        lambda: build_model(c.model, rngs=nnx.Rngs(params=0)))))
    assert axes["stack/blocks/ln1/scale"][0] == "layers"
    mask = flat(decay_mask(params, tuple(c.optimizer.no_decay), axes))
    for p in ("stack/blocks/ln1/scale", "stack/blocks/ln2/bias", "stack/blocks/mlp/fc_bias",
              "stack/blocks/attn/out_bias", "stack/blocks/attn/qkv_bias", "final_ln/scale"):
        assert not mask[p], p
    for p in ("stack/blocks/mlp/fc", "stack/blocks/attn/qkv", "stack/blocks/attn/out",
              "embed/table", "positions/table"):
        assert mask[p], p
    # By structure alone a stacked [L, D] scale is still a vector; the name list is what keeps
    # the [L, 3, heads, head_dim] qkv_bias out, which is why `no_decay` stays in the config.
    by_rank = flat(decay_mask(params, (), axes))
    assert not by_rank["stack/blocks/ln1/scale"] and by_rank["stack/blocks/attn/qkv_bias"]


def test_frozen_params_stay_bitwise_unchanged_and_do_not_affect_clipping():
    c = gpt_config(lr=1e-2, weight_decay=0.1, grad_clip=0.5)
    c.optimizer.param_groups = (param_group("^embed/", frozen=True),
                                param_group("ln1", frozen=True))
    axes = model_param_axes(c.model)
    opt = make_optimizer(c.optimizer, 10, param_axes=axes)
    params = params_of(c.model)
    # -0.0 is the value that an update of +0.0 would silently turn into +0.0
    params["embed"]["table"] = params["embed"]["table"].at[0, :3].set(-0.0)
    keys = iter(jax.random.split(jax.random.key(0), 64))
    grads = jax.tree.map(lambda x: jax.random.normal(next(keys), x.shape) * 10.0, params)
    frozen = lambda p: p.startswith("embed/") or "ln1" in p  # noqa: E731
    huge = jax.tree_util.tree_map_with_path(
        lambda p, g: g * 1e6 if frozen(path_str(p)) else g, grads)
    new, new_huge = run(opt, params, grads, steps=4), run(opt, params, huge, steps=4)
    before, after, after_huge = flat(params), flat(new), flat(new_huge)
    for p in before:
        if frozen(p):
            assert np.asarray(after[p]).tobytes() == np.asarray(before[p]).tobytes(), p
        else:
            assert not np.allclose(after[p], before[p]), p
            np.testing.assert_array_equal(after[p], after_huge[p])


def test_lr_mult_halves_the_sgd_update():
    cfg = ml_collections.ConfigDict(dict(
        name="sgd", lr=0.1, schedule="constant", warmup_steps=0, momentum=0.0, grad_clip=0.0,
        param_groups=(param_group("head", lr_mult=0.5),)))
    params = {"head": {"w": jnp.ones((3, 2))}, "body": {"w": jnp.ones((3, 2))}}
    grads = jax.tree.map(lambda x: jnp.full_like(x, 2.0), params)
    new = run(make_optimizer(cfg, 10), params, grads)
    np.testing.assert_allclose(1.0 - new["body"]["w"], 0.2, rtol=1e-6)
    np.testing.assert_allclose(1.0 - new["head"]["w"], 0.1, rtol=1e-6)


def test_group_weight_decay_applies_and_inherits():
    cfg = gpt_config(lr=0.1, weight_decay=0.1, grad_clip=0.0).optimizer
    cfg.param_groups = (param_group("strong", weight_decay=0.5), param_group("same", lr_mult=1.0))
    params = {n: {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))} for n in ("strong", "same", "base")}
    new = run(make_optimizer(cfg, 10), params, jax.tree.map(jnp.zeros_like, params))
    # zero gradients: AdamW moves a parameter by -lr * wd * p only
    np.testing.assert_allclose(new["strong"]["w"], 1 - 0.1 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(new["same"]["w"], 1 - 0.1 * 0.1, rtol=1e-6)
    np.testing.assert_allclose(new["base"]["w"], 1 - 0.1 * 0.1, rtol=1e-6)
    for n in params:  # biases stay undecayed inside every group
        np.testing.assert_array_equal(new[n]["b"], 1.0)


def test_layer_decay_multipliers_for_a_stacked_gpt():
    c = gpt_config(name="sgd", lr=1.0, grad_clip=0.0, layer_decay=0.5)
    params = params_of(c.model)
    new = run(make_optimizer(c.optimizer, 10, param_axes=model_param_axes(c.model)), params,
              jax.tree.map(jnp.ones_like, params))
    step = {p: np.asarray(flat(params)[p]) - np.asarray(x) for p, x in flat(new).items()}
    # L = 2: layer 0 gets 0.5 ** 2, layer 1 0.5 ** 1, embeddings 0.5 ** 3, the rest 1
    for p in ("stack/blocks/attn/qkv", "stack/blocks/ln1/scale", "stack/blocks/mlp/proj_bias"):
        np.testing.assert_allclose(step[p][0], 0.25, rtol=1e-6)
        np.testing.assert_allclose(step[p][1], 0.5, rtol=1e-6)
    np.testing.assert_allclose(step["embed/table"], 0.125, rtol=1e-6)
    np.testing.assert_allclose(step["positions/table"], 0.125, rtol=1e-6)
    np.testing.assert_allclose(step["final_ln/scale"], 1.0, rtol=1e-6)


def test_layer_decay_multipliers_for_recurrent_layers_by_pattern():
    model = rnn_model_config("lstm")
    model.num_layers = 3
    opt = default_config("rnn_lm").optimizer
    axes = model_param_axes(model)
    shapes = {p: (1,) for p in axes}
    m = layer_multipliers(shapes, axes, 0.5, opt.layer_decay_embed_pattern,
                          opt.layer_decay_layer_pattern)
    assert (m["cells/0/w_in"], m["cells/1/b_in"], m["cells/2/w_rec"]) == (0.125, 0.25, 0.5)
    assert m["table"] == 0.0625 and m["out_kernel"] == 1.0 and m["out_bias"] == 1.0
    with pytest.raises(ValueError, match="layer_decay_layer_pattern"):
        layer_multipliers(shapes, axes, 0.5, opt.layer_decay_embed_pattern, "")


def test_param_groups_from_overrides_json_and_literals():
    c = default_config("gpt")
    c.optimizer.param_groups = (param_group("^embed/"), param_group("final_ln"))
    c.update_from_flattened_dict({"optimizer.param_groups[0].lr_mult": 0.1,
                                  "optimizer.param_groups[0].weight_decay": 0.0,
                                  "optimizer.param_groups[1].frozen": True})
    expect = [dict(pattern="^embed/", lr_mult=0.1, weight_decay=0.0, frozen=False),
              dict(pattern="final_ln", lr_mult=1.0, weight_decay=None, frozen=True)]
    assert parse_param_groups(c.optimizer) == expect
    # what a resumed run reads back from config.json: a list of plain dicts
    again = ml_collections.ConfigDict(json.loads(c.to_json_best_effort()))
    assert parse_param_groups(again.optimizer) == expect
    # a whole tuple given as a literal (--config.optimizer.param_groups="({...},)")
    c.update_from_flattened_dict({"optimizer.param_groups": ({"pattern": "ln", "frozen": True},)})
    assert parse_param_groups(c.optimizer) == [dict(pattern="ln", lr_mult=1.0,
                                                    weight_decay=None, frozen=True)]
    with pytest.raises(AttributeError):  # groups are locked: a misspelt field fails
        param_group("x").lr_mul = 0.1


def test_bad_param_groups_are_named():
    c = gpt_config()
    axes = model_param_axes(c.model)
    for group, match in [({"pattern": "x", "lr_mul": 2}, r"param_groups\[0\] has unknown"),
                         ({"pattern": "("}, r"param_groups\[0\].pattern='\(' is not a valid"),
                         ({"pattern": "nothing_like_this"}, "matches no parameter"),
                         ({"pattern": "x", "lr_mult": -1.0}, "must be >= 0")]:
        c.optimizer.param_groups = (group,)
        with pytest.raises(ValueError, match=match):
            make_optimizer(c.optimizer, 10, param_axes=axes)
    c.optimizer.update(name="sgd", param_groups=(param_group("embed", weight_decay=0.1),))
    with pytest.raises(ValueError, match="only optimizer.name='adamw'"):
        make_optimizer(c.optimizer, 10)
    c.optimizer.update(name="adamw", param_groups=(), layer_decay=0.8)
    with pytest.raises(ValueError, match="param_axes"):
        make_optimizer(c.optimizer, 10)


def test_opt_state_shardings_keep_masked_nodes():
    """The shardings helper the state builder needs once groups put MaskedNodes in the state."""
    c = gpt_config(layer_decay=0.8)
    c.optimizer.param_groups = (param_group("^embed/", frozen=True),
                                param_group("final_ln", lr_mult=0.5))
    opt = make_optimizer(c.optimizer, 10, param_axes=model_param_axes(c.model))
    mesh = sharding.make_mesh(c.mesh)
    _, abstract_vars = nnx.split(nnx.eval_shape(lambda: build_model(c.model, rngs=nnx.Rngs(0))))
    abstract_params = nnx.to_pure_dict(abstract_vars)
    logical = nnx.to_pure_dict(nnx.get_partition_spec(abstract_vars))
    param_sh = sharding.tree_shardings(logical, abstract_params, mesh)
    abstract_opt = jax.eval_shape(opt.init, abstract_params)
    opt_sh = opt_state_shardings(opt, abstract_opt, param_sh, sharding.replicated(mesh))
    assert jax.tree.structure(opt_sh) == jax.tree.structure(abstract_opt)
    state = jax.jit(opt.init, out_shardings=opt_sh)(params_of(c.model))
    assert jax.tree.structure(state) == jax.tree.structure(abstract_opt)
