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


def _flat_shapes(tree) -> dict:
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
    def __init__(self, directory, *, keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        # Handlers named up front, so a fresh process can read metadata before restoring.
        handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler()}
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_handlers=handlers)

    def latest_step(self):
        return self.manager.latest_step()

    def save(self, step: int, state, data_state: dict):
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)))

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
        diff = describe_mismatch(_flat_shapes(stored), _flat_shapes(abstract_state))
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
