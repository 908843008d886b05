"""Optax optimizer and learning-rate schedules built from `config.optimizer`.

Beyond one optimizer for every parameter, `config.optimizer` can ask for
  - parameter groups (`param_groups`, see `param_group`): a learning-rate multiplier, their own
    weight decay, or frozen, chosen by a regex over the "/"-joined parameter path;
  - layer-wise learning-rate decay (`layer_decay`, ELECTRA / BEiT): layer i of L is updated with
    lr * decay ** (L - i), the embeddings with lr * decay ** (L + 1), everything else with lr.
Both, and the weight-decay mask, need the parameters' logical axis names (`param_axes`, see
`model_param_axes`), because the pure params pytree does not say which axis is the stacked
"layers" axis of a scanned stack.
"""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from llm_jax.models import build_model
from llm_jax.training.config_schema import WARMUP_BOTH

GROUP_FIELDS = ("pattern", "lr_mult", "weight_decay", "frozen")


def warmup_steps(opt_cfg, total_steps: int) -> int:
    """The warm-up length: optimizer.warmup_steps, or round(warmup_fraction * total_steps) when
    warmup_fraction > 0 (BERT's "the first 10% of steps": 0.1, with no count of the training
    examples in the config). Setting both is an error (check_config says so first)."""
    fraction = float(opt_cfg.get("warmup_fraction", 0.0) or 0.0)
    steps = int(opt_cfg.get("warmup_steps", 0) or 0)
    if fraction > 0:
        if steps:
            raise ValueError(WARMUP_BOTH.format(steps=steps, fraction=fraction))
        return round(fraction * total_steps)
    return steps


def make_schedule(opt_cfg, total_steps: int, steps_per_epoch: int = 0) -> optax.Schedule:
    """`steps_per_epoch` is needed only by the per-epoch schedule ("epoch_decay");
    `total_steps` also sizes a warm-up given as optimizer.warmup_fraction."""
    warmup = warmup_steps(opt_cfg, total_steps)
    decay_steps = int(opt_cfg.get("decay_steps", 0) or total_steps)
    lr, min_lr = float(opt_cfg.lr), float(opt_cfg.get("min_lr", 0.0))
    kind = opt_cfg.schedule
    if kind == "constant":
        after = optax.constant_schedule(lr)
    elif kind == "cosine":
        after = optax.cosine_decay_schedule(lr, max(decay_steps - warmup, 1), alpha=min_lr / lr)
    elif kind == "linear":
        after = optax.linear_schedule(lr, min_lr, max(decay_steps - warmup, 1))
    elif kind == "inverse_sqrt":  # "Attention is all you need": lr * sqrt(warmup / step)
        after = lambda step: lr * jax.lax.rsqrt((step + max(warmup, 1)) / max(warmup, 1))  # noqa: E731
    elif kind == "epoch_decay":
        after = epoch_decay_schedule(lr, float(opt_cfg.get("lr_decay", 1.0)),
                                     int(opt_cfg.get("decay_after_epochs", 0)), steps_per_epoch)
    else:
        raise ValueError(f"config.optimizer.schedule={kind!r}: expected one of "
                         "'constant', 'cosine', 'linear', 'inverse_sqrt', 'epoch_decay'")
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), after], [warmup])


def epoch_decay_schedule(lr: float, decay: float, after_epochs: int,
                         steps_per_epoch: int) -> optax.Schedule:
    """lr * decay ** max(epoch + 1 - after_epochs, 0), constant within an epoch (epoch 0-based).

    The schedule of Zaremba et al. (2014) as ptb_word_lm.py writes it: with after_epochs=4 the
    first four epochs run at lr and epoch i >= 4 at lr * decay ** (i - 3).
    """
    if steps_per_epoch < 1:
        raise ValueError("config.optimizer.schedule='epoch_decay' needs a task whose training "
                         "batches have a whole number of steps per epoch")

    def schedule(step):
        epoch = jnp.asarray(step) // steps_per_epoch
        return lr * decay ** jnp.maximum(epoch + 1 - after_epochs, 0).astype(jnp.float32)
    return schedule


def path_str(path) -> str:
    """'stack/blocks/attn/qkv' for a jax key path (dict keys, sequence indices, attributes)."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _axes_leaf(x):
    return x is None or isinstance(x, (jax.sharding.PartitionSpec, tuple))


def flat_axes(param_axes) -> dict:
    """{path: tuple of logical axis names} from a tree of PartitionSpecs (or such a flat dict)."""
    leaves = jax.tree_util.tree_flatten_with_path(param_axes, is_leaf=_axes_leaf)[0]
    return {path_str(p): tuple(a) if a is not None else () for p, a in leaves}


def model_param_axes(model_cfg) -> dict:
    """The logical axes of every parameter of the model `model_cfg` builds (no arrays made)."""
    abstract = nnx.eval_shape(lambda: build_model(model_cfg, rngs=nnx.Rngs(params=0)))
    return flat_axes(nnx.to_pure_dict(nnx.get_partition_spec(nnx.split(abstract)[1])))


def _stacked(axes, path) -> bool:
    return bool(axes) and tuple(axes.get(path, ()))[:1] == ("layers",)


def decay_mask(params, no_decay=("bias", "scale"), param_axes=None):
    """True for parameters that get weight decay: matrices, embeddings and conv kernels.

    The rule is structural: rank >= 2, not counting a leading stacked "layers" axis (known only
    from `param_axes`), so biases and norm scales/offsets of any name, such as the recurrent
    cells' `b_in`, are left alone, and a stacked bias [L, D] is still a bias. `no_decay` name
    suffixes are excluded as well, because a multi-dimensional bias (attention `qkv_bias`
    [3, heads, head_dim]) has the rank of a matrix.
    """
    axes = None if param_axes is None else flat_axes(param_axes)

    def keep(path, x):
        p = path_str(path)
        rank = np.ndim(x) - (1 if _stacked(axes, p) else 0)
        return rank >= 2 and not any(p.endswith(suffix) for suffix in no_decay)
    return jax.tree_util.tree_map_with_path(keep, params)


def param_group(pattern: str, *, lr_mult: float = 1.0, weight_decay=None,
                frozen: bool = False) -> ml_collections.ConfigDict:
    """One entry of `config.optimizer.param_groups`, e.g. (param_group("^embed/", frozen=True),).

    A locked ConfigDict, so a command line can set its fields by index
    (--config.optimizer.param_groups[0].lr_mult=0.1); weight_decay=None inherits the base value
    and is a float placeholder, because config flags cannot override a plain None field.
    """
    g = ml_collections.ConfigDict(dict(
        pattern=pattern, lr_mult=float(lr_mult), frozen=bool(frozen),
        weight_decay=ml_collections.config_dict.placeholder(float)))
    g.weight_decay = weight_decay if weight_decay is None else float(weight_decay)
    g.lock()
    return g


def parse_param_groups(opt_cfg, param_axes=None) -> list[dict]:
    """The validated `config.optimizer.param_groups`, each a dict with all of GROUP_FIELDS.

    Groups may be ConfigDicts or plain dicts (a whole tuple given as a literal on the command
    line, or read back from config.json as a list).
    """
    raw = opt_cfg.get("param_groups") or ()
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"config.optimizer.param_groups must be a tuple of groups (see "
                         f"optimizer.param_group), got {type(raw).__name__}")
    groups = []
    for i, g in enumerate(raw):
        where = f"config.optimizer.param_groups[{i}]"
        g = g.to_dict() if isinstance(g, ml_collections.ConfigDict) else dict(g)
        unknown = sorted(set(g) - set(GROUP_FIELDS))
        if unknown:
            raise ValueError(f"{where} has unknown field(s) {unknown}: expected {GROUP_FIELDS}")
        g = {"lr_mult": 1.0, "weight_decay": None, "frozen": False, **g}
        if not isinstance(g.get("pattern"), str) or not g["pattern"]:
            raise ValueError(f"{where}.pattern must be a regex over '/'-joined parameter paths")
        try:
            rx = re.compile(g["pattern"])
        except re.error as e:
            raise ValueError(f"{where}.pattern={g['pattern']!r} is not a valid regex: {e}") from None
        if float(g["lr_mult"]) < 0 or (g["weight_decay"] is not None and float(g["weight_decay"]) < 0):
            raise ValueError(f"{where}: lr_mult and weight_decay must be >= 0")
        if g["weight_decay"] is not None and opt_cfg.name != "adamw":
            raise ValueError(f"{where}.weight_decay: only optimizer.name='adamw' has weight decay")
        if param_axes is not None and not any(rx.search(p) for p in param_axes):
            raise ValueError(f"{where}.pattern={g['pattern']!r} matches no parameter (paths look "
                             f"like {next(iter(param_axes), '')!r})")
        groups.append(g)
    return groups


def group_label_fn(groups):
    """path -> 'frozen', 'group<i>' of the first group whose pattern it contains, or 'base'."""
    compiled = [(re.compile(g["pattern"]), "frozen" if g["frozen"] else f"group{i}")
                for i, g in enumerate(groups)]

    def label(path: str) -> str:
        return next((name for rx, name in compiled if rx.search(path)), "base")
    return label


def freeze() -> optax.GradientTransformation:
    """Updates of -0.0, not set_to_zero's +0.0: p + (-0.0) is p bit for bit for every p,
    while -0.0 + 0.0 is +0.0, so a frozen parameter holding -0.0 would otherwise change."""
    def update(updates, state, params=None):
        return jax.tree.map(lambda u: jnp.full_like(u, -0.0), updates), state
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def layer_multipliers(shapes: dict, param_axes: dict, decay: float,
                      embed_pattern: str = "", layer_pattern: str = "") -> dict:
    """{path: lr multiplier}: a float, or an array [L, 1, ...] for a param stacked over layers.

    A parameter's layer index is the slice of its leading "layers" axis; failing that the
    integer captured by `layer_pattern` (e.g. r"cells/(\\d+)/" for recurrent stacks). L is the
    largest layer count found. Parameters matching `embed_pattern` count as below layer 0; the
    rest (heads, final norms) get the full learning rate.
    """
    layer_rx = re.compile(layer_pattern) if layer_pattern else None
    embed_rx = re.compile(embed_pattern) if embed_pattern else None
    index = {p: int(m.group(1)) for p in shapes if layer_rx and (m := layer_rx.search(p))}
    stacked = {p: shapes[p][0] for p in shapes if _stacked(param_axes, p)}
    num_layers = max([*stacked.values(), *(i + 1 for i in index.values()), 0])
    if num_layers == 0:
        raise ValueError(f"config.optimizer.layer_decay={decay}: no parameter has a 'layers' axis "
                         "or matches config.optimizer.layer_decay_layer_pattern")
    out = {}
    for p, shape in shapes.items():
        if p in stacked:
            m = decay ** (num_layers - np.arange(stacked[p], dtype=np.float64))
            out[p] = m.reshape((-1,) + (1,) * (len(shape) - 1))
        elif p in index:
            out[p] = decay ** (num_layers - index[p])
        elif embed_rx and embed_rx.search(p):
            out[p] = decay ** (num_layers + 1)
        else:
            out[p] = 1.0
    return out


def scale_by_layer_decay(decay: float, param_axes: dict, embed_pattern: str = "",
                         layer_pattern: str = "") -> optax.GradientTransformation:
    """Multiplies each update element-wise by its layer's multiplier (see layer_multipliers).

    Per-element rather than per-group, because a stacked [L, ...] parameter holds every layer.
    """
    def update(updates, state, params=None):
        flat = jax.tree_util.tree_flatten_with_path(updates)[0]
        mult = layer_multipliers({path_str(p): u.shape for p, u in flat}, param_axes, decay,
                                 embed_pattern, layer_pattern)
        scaled = jax.tree_util.tree_map_with_path(
            lambda p, u: u * jnp.asarray(mult[path_str(p)], u.dtype), updates)
        return scaled, state
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def opt_state_shardings(optimizer, abstract_opt_state, param_shardings, other):
    """Shardings of the optimizer state: the params' shardings for every param-shaped subtree
    (moments), `other` for the rest (counts).

    With param_groups each group's state holds optax.MaskedNode where a parameter belongs to
    another group; those empty nodes are kept, so the result has the state's structure.
    """
    masked = lambda x: isinstance(x, optax.MaskedNode)  # noqa: E731
    return optax.tree_map_params(
        optimizer, lambda v, s: v if masked(v) else s, abstract_opt_state, param_shardings,
        transform_non_params=lambda _: other,
        is_leaf=lambda x: masked(x) or isinstance(x, jax.sharding.Sharding))


def _base_optimizer(opt_cfg, learning_rate, weight_decay, mask):
    if opt_cfg.name == "adamw":
        return optax.adamw(learning_rate, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                           weight_decay=weight_decay, mask=mask)
    if opt_cfg.name == "sgd":
        return optax.sgd(learning_rate, momentum=opt_cfg.get("momentum") or None)
    raise ValueError(f"config.optimizer.name={opt_cfg.name!r}: expected 'adamw' or 'sgd'")


def make_optimizer(opt_cfg, total_steps: int, steps_per_epoch: int = 0,
                   param_axes=None) -> optax.GradientTransformation:
    """`param_axes`: the logical axes of the parameters (model_param_axes(config.model), or the
    tree of PartitionSpecs of the model state). Without it stacked axes are unknown, so rank
    counts every axis, and layer_decay is refused.

    Without param_groups and layer_decay the optimizer (and its state's structure) is the plain
    clip + AdamW/SGD chain, so runs started before those fields existed still resume.
    """
    schedule = make_schedule(opt_cfg, total_steps, steps_per_epoch)
    axes = None if param_axes is None else flat_axes(param_axes)
    no_decay = tuple(opt_cfg.get("no_decay", ()))
    mask = lambda p: decay_mask(p, no_decay, axes)  # noqa: E731
    groups = parse_param_groups(opt_cfg, axes)
    base_wd = opt_cfg.get("weight_decay", 0.0)
    if not groups:
        opt = _base_optimizer(opt_cfg, schedule, base_wd, mask)
    else:
        label = group_label_fn(groups)
        transforms = {"base": _base_optimizer(opt_cfg, schedule, base_wd, mask), "frozen": freeze()}
        for i, g in enumerate(groups):
            if g["frozen"]:
                continue
            m = float(g["lr_mult"])
            lr = schedule if m == 1.0 else (lambda step, m=m: schedule(step) * m)
            wd = base_wd if g["weight_decay"] is None else float(g["weight_decay"])
            transforms[f"group{i}"] = _base_optimizer(opt_cfg, lr, wd, mask)
        labels = lambda p: jax.tree_util.tree_map_with_path(lambda k, _: label(path_str(k)), p)  # noqa: E731
        opt = optax.multi_transform(transforms, labels)
    if opt_cfg.grad_clip:
        clip = optax.clip_by_global_norm(opt_cfg.grad_clip)
        if any(g["frozen"] for g in groups):
            # frozen gradients must not shrink the trainable parameters' clipped updates
            clip = optax.masked(clip, lambda p: jax.tree_util.tree_map_with_path(
                lambda k, _: label(path_str(k)) != "frozen", p))
        opt = optax.chain(clip, opt)
    decay = float(opt_cfg.get("layer_decay", 1.0))
    if decay != 1.0:
        if axes is None:
            raise ValueError("config.optimizer.layer_decay needs make_optimizer(..., param_axes=...)")
        if decay <= 0:
            raise ValueError(f"config.optimizer.layer_decay={decay} must be > 0")
        opt = optax.chain(opt, scale_by_layer_decay(
            decay, axes, opt_cfg.get("layer_decay_embed_pattern", ""),
            opt_cfg.get("layer_decay_layer_pattern", "")))
    return opt
