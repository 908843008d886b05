"""Optax optimizer and learning-rate schedules built from `config.optimizer`."""

import jax
import jax.numpy as jnp
import optax


def make_schedule(opt_cfg, total_steps: int, steps_per_epoch: int = 0) -> optax.Schedule:
    """`steps_per_epoch` is needed only by the per-epoch schedule ("epoch_decay")."""
    warmup = int(opt_cfg.warmup_steps)
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


def decay_mask(params, no_decay=("bias", "scale")):
    """True for parameters that get weight decay: not biases, not normalisation scales."""
    def keep(path, _):
        name = str(getattr(path[-1], "key", path[-1]))
        return not any(name.endswith(suffix) for suffix in no_decay)
    return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(opt_cfg, total_steps: int, steps_per_epoch: int = 0) -> optax.GradientTransformation:
    schedule = make_schedule(opt_cfg, total_steps, steps_per_epoch)
    if opt_cfg.name == "adamw":
        opt = optax.adamw(schedule, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                          weight_decay=opt_cfg.weight_decay,
                          mask=lambda p: decay_mask(p, tuple(opt_cfg.no_decay)))
    elif opt_cfg.name == "sgd":
        opt = optax.sgd(schedule, momentum=opt_cfg.get("momentum") or None)
    else:
        raise ValueError(f"config.optimizer.name={opt_cfg.name!r}: expected 'adamw' or 'sgd'")
    if opt_cfg.grad_clip:
        opt = optax.chain(optax.clip_by_global_norm(opt_cfg.grad_clip), opt)
    return opt
