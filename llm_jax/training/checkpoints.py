"""Orbax checkpoints of the train state plus the data pipeline's position.

Orbax writes each step into a temporary directory and renames it only once every file is
committed, so a run killed mid-save leaves the previous finished checkpoint intact; the
unfinished temporary directory is ignored on restore.
"""

import os
import sys

import jax
import orbax.checkpoint as ocp

DAMAGED_DIR = "checkpoints_damaged"


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


def describe_mismatch(stored, expected, limit=4) -> str:
    """The differences between two {path: shape} maps on one line, or '' when they agree."""
    items = []
    for key in sorted(set(stored) | set(expected)):
        if key not in stored:
            items.append(f"{key} missing from the checkpoint")
        elif key not in expected:
            items.append(f"{key} not in the model")
        elif stored[key] != expected[key]:
            items.append(f"{key} {stored[key]} in the checkpoint, {expected[key]} in the model")
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def short_error(e: BaseException, limit: int = 160) -> str:
    """`Type: first line` of an exception, cut to `limit` characters (TensorStore and Orbax
    errors run to kilobytes of JSON specs, which nobody reads)."""
    text = (str(e).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[:limit] + "..."
    return f"{type(e).__name__}: {text}"


class CheckpointMismatch(CheckpointError):
    """A readable checkpoint whose arrays do not fit the model of the config (not damage)."""


def has_checkpoint(workdir) -> bool:
    """Whether WORKDIR/checkpoints holds a finished step (Orbax names them by number)."""
    ckpt = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpt) and any(name.isdigit() for name in os.listdir(ckpt))


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

    def restore(self, abstract_state, step=None, *, move_damaged=False):
        """(state, data_state) of `step`, placed as `abstract_state` says. Without `step`: the
        newest checkpoint that restores, saying which newer ones did not; with `move_damaged`
        (a run about to save again) those are moved to DAMAGED_DIR beside this directory:
        kept, not deleted, but out of the way of the step numbers the run will write."""
        if step is not None:
            return self._restore_step(step, abstract_state)
        damaged = []
        for candidate in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self._restore_step(candidate, abstract_state)
            except CheckpointMismatch:
                raise
            except CheckpointError as e:
                damaged.append((candidate, str(e)))
                continue
            if damaged:
                self._report_damage(damaged, candidate, move_damaged)
            return restored
        raise CheckpointError(f"no checkpoint in {self.directory} can be restored: "
                              + "; ".join(message for _, message in damaged))

    def _report_damage(self, damaged, good_step, move):
        aside = os.path.join(os.path.dirname(self.directory), DAMAGED_DIR)
        for step, message in damaged:
            if move:
                os.makedirs(aside, exist_ok=True)
                os.replace(os.path.join(self.directory, str(step)), os.path.join(aside, str(step)))
                message += f"; moved it to {aside}/{step}"
            print(f"warning: {message}", file=sys.stderr)
        if move:
            self.manager.reload()
        print(f"using the newest checkpoint that restores: step {good_step}", file=sys.stderr,
              flush=True)

    def _restore_step(self, step, abstract_state):
        path = os.path.join(self.directory, str(step))
        try:
            stored = self.manager.item_metadata(step)["state"].tree
        except Exception as e:  # noqa: BLE001 (orbax raises many types for unreadable files)
            raise CheckpointError(f"checkpoint {path} cannot be read ({short_error(e)})") from e
        diff = describe_mismatch(flat_shapes(stored), flat_shapes(abstract_state))
        if diff:
            raise CheckpointMismatch(f"checkpoint {path} does not fit the model built from the "
                                     f"config: {diff}")
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(f"checkpoint {path} cannot be restored ({short_error(e)})") from e
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
