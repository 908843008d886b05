"""`python -m llm_jax {train,eval,generate,sweep,download} ...` (also the `llm-jax` script)."""

import json
import sys

from absl import app, flags, logging
from ml_collections import config_flags

COMMANDS = ("train", "eval", "generate", "sweep", "download", "export")
USAGE = """usage:
  python -m llm_jax train    --config=configs/gpt_shakespeare.py:cpu --workdir=DIR [--config.FIELD=V ...]
  python -m llm_jax eval     --workdir=DIR [--split=valid]
  python -m llm_jax generate --workdir=DIR --prompt="ROMEO:" [--max_new_tokens=200 --temperature=0.8
                             --top_k=0 --top_p=1.0 --num_samples=1 --seed=0]
  python -m llm_jax sweep    --config=... --sweep=experiments/NAME/sweep.py --workdir=DIR
  python -m llm_jax download DATASET [--data_dir=DIR]   (tinyshakespeare, ptb, wikitext-2)
  python -m llm_jax export   --workdir=DIR --out=DIR   (a trained biLM, for models.elmo.load_bilm)"""

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant].",
                                          lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: config, metrics, checkpoints, tokenizer.")
flags.DEFINE_string("sweep", None, "Sweep file defining get_sweep().")
flags.DEFINE_string("split", None, "eval: split to evaluate (default: the config's eval split).")
flags.DEFINE_string("prompt", "\n", "generate: text to continue.")
flags.DEFINE_integer("max_new_tokens", 200, "generate: tokens to add.")
flags.DEFINE_float("temperature", 0.8, "generate: 0 is greedy.")
flags.DEFINE_integer("top_k", 0, "generate: keep the k most likely tokens (0: all).")
flags.DEFINE_float("top_p", 1.0, "generate: nucleus mass to keep (1: all).")
flags.DEFINE_integer("num_samples", 1, "generate: continuations, decoded as one batch.")
flags.DEFINE_integer("seed", 0, "generate: sampling seed.")
flags.DEFINE_string("data_dir", None, "download: destination (default $LLM_JAX_DATA_DIR).")
flags.DEFINE_string("out", None, "export: directory to write the exported model to.")
FLAGS = flags.FLAGS


def _require(name):
    if getattr(FLAGS, name) is None:
        raise app.UsageError(f"--{name} is required for this command\n{USAGE}")
    return getattr(FLAGS, name)


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"expected a command, one of {COMMANDS}\n{USAGE}")
    command, rest = argv[1], argv[2:]
    if not FLAGS["verbosity"].present:  # Orbax logs every file it writes at INFO
        logging.set_verbosity(logging.WARNING)
    if command == "download":
        from llm_jax.data import download
        if len(rest) != 1:
            raise app.UsageError(f"download takes one data set name\n{USAGE}")
        for path in download(rest[0], FLAGS.data_dir):
            print(path)
        return
    if rest:
        raise app.UsageError(f"unexpected arguments {rest}\n{USAGE}")
    workdir = _require("workdir")
    if command in ("train", "sweep") and _CONFIG.value is None:
        raise app.UsageError(f"--config is required for {command}\n{USAGE}")
    from llm_jax.training import commands
    if command == "train":
        commands.train(_CONFIG.value, workdir)
    elif command == "sweep":
        commands.sweep(_CONFIG.value, _require("sweep"), workdir)
    elif command == "export":
        print(commands.export_model(workdir, _require("out")))
    elif command == "eval":
        print(json.dumps(commands.evaluate_workdir(workdir, FLAGS.split), indent=2))
    elif command == "generate":
        for text in commands.generate_text(
                workdir, FLAGS.prompt, max_new_tokens=FLAGS.max_new_tokens,
                temperature=FLAGS.temperature, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
                num_samples=FLAGS.num_samples, seed=FLAGS.seed):
            print(text)
            print("-" * 40)


def _main_with_clean_errors(argv):
    """Bad input (config, data, checkpoint) ends with its message, not a traceback."""
    from llm_jax.training.checkpoints import CheckpointError
    try:
        main(argv)
    except (ValueError, KeyError, FileNotFoundError, CheckpointError) as e:
        if FLAGS["verbosity"].present:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def run():
    app.run(_main_with_clean_errors, argv=sys.argv)


if __name__ == "__main__":
    run()
