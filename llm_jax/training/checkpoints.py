"""Orbax checkpoints of the train state plus the data pipeline's position.

Orbax writes each step into a temporary directory and renames it only once every file is
committed, so a run killed mid-save leaves the previous finished checkpoint intact; the
unfinished temporary directory is ignored on restore.
"""

import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or that does not fit the model being restored."""


def _key_name(k) -> str:
    # dict keys, sequence indices and namedtuple fields (Orbax's metadata stores those as dicts)
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def flat_shapes(tree) -> dict:
    """{"a/b/c": shape} of every leaf of a pytree (Orbax metadata included)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): tuple(getattr(leaf, "shape", ()))
            for path, leaf in leaves}


def describe_mismatch(stored, expected, limit=8) -> str:
    """Human-readable differences between two {path: shape} maps, or '' when they agree."""
    lines = []
    for key in sorted(set(stored) | set(expected)):
        if key not in stored:
            lines.append(f"  {key}: missing from the checkpoint (model expects {expected[key]})")
        elif key not in expected:
            lines.append(f"  {key}: in the checkpoint {stored[key]} but not in the model")
        elif stored[key] != expected[key]:
            lines.append(f"  {key}: checkpoint has shape {stored[key]}, model expects {expected[key]}")
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return "\n".join(lines[:limit]) + more


class Checkpointer:
    def __init__(self, directory, *, keep: int = 3, best_mode: str | None = None):
        """`best_mode` "max"/"min": keep the `keep` steps with the best saved metric instead of
        the latest ones (saves then pass `metric=`)."""
        self.directory = os.path.abspath(directory)
        best = {}
        if best_mode is not None:
            best = dict(best_fn=lambda m: m["value"], best_mode=best_mode)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, **best)
        # Handlers named up front, so a fresh process can read metadata before restoring.
        handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_handlers=handlers)

    def latest_step(self):
        return self.manager.latest_step()

    def save(self, step: int, state, data_state: dict, metric: float | None = None):
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)),
            metrics=None if metric is None else {"value": float(metric)})

    def wait(self):
        self.manager.wait_until_finished()

    def restore(self, abstract_state, step=None):
        """(state, data_state) of `step` (default: latest), placed as `abstract_state` says."""
        step = self.latest_step() if step is None else step
        path = os.path.join(self.directory, str(step))
        try:
            stored = self.manager.item_metadata(step)["state"].tree
        except Exception as e:  # noqa: BLE001 (orbax raises many types for unreadable files)
            raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); "
                                  "it may be corrupt: delete it to resume from an earlier one") from e
        diff = describe_mismatch(flat_shapes(stored), flat_shapes(abstract_state))
        if diff:
            raise CheckpointError(
                f"checkpoint {path} does not match the model built from the config:\n{diff}\n"
                "Was this workdir written with a different config? Compare its config.json.")
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"checkpoint {path} cannot be restored "
                                  f"({type(e).__name__}: {e}); it may be corrupt") from e
        return restored["state"], restored["data"]

    def close(self):
        self.manager.wait_until_finished()
        self.manager.close()


class BestCheckpoint:
    """The checkpoint with the best value of one eval metric, kept in its own directory beside
    the latest ones (a fine-tuning run's best dev score is usually not its last)."""

    def __init__(self, directory, metric: str, mode: str):
        if mode not in ("max", "min"):
            raise ValueError(f"config.train.best_mode={mode!r}: expected 'max' or 'min'")
        self.metric, self.mode = metric, mode
        self.checkpointer = Checkpointer(directory, keep=1, best_mode=mode)
        step = self.checkpointer.manager.best_step()
        self.best = None if step is None else self.checkpointer.manager.metrics(step)["value"]

    def update(self, step: int, metrics: dict, state, data_state) -> bool:
        """Saves `state` when `metrics[self.metric]` beats the best so far; True if it did."""
        if self.metric not in metrics:
            raise ValueError(f"config.train.best_metric={self.metric!r} is not among the eval "
                             f"metrics {sorted(metrics)}")
        value = float(metrics[self.metric])
        if self.best is not None and not (value > self.best if self.mode == "max"
                                          else value < self.best):
            return False
        self.checkpointer.save(step, state, data_state, metric=value)
        self.best = value
        return True

    def close(self):
        self.checkpointer.close()
