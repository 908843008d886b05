"""`python -m llm_jax {train,eval,generate,translate,predict,sweep,download,export,average,
import-hf,export-hf,lm-eval} ...`
(also the `llm-jax` script).

Errors end the program with one `error: ...` line on stderr, naming the flag or file, and no
traceback unless --verbosity=1 or higher is given. Exit status 2: the command line (a flag,
a --config file, its variant or a --config.FIELD override) is wrong and nothing ran; 1: the
command started and failed (bad data, checkpoint, sweep file, ...). absl itself exits 1 for
both; 2 is the argparse/POSIX convention, and lets a script tell "never started" apart.
"""

import difflib
import importlib.util
import json
import os
import sys
import traceback

from absl import app, flags, logging
from ml_collections import ConfigDict, config_flags

from llm_jax.allocator import tune_malloc

COMMANDS = ("train", "eval", "generate", "translate", "predict", "sweep", "download", "export",
            "average", "import-hf", "export-hf", "lm-eval")
USAGE = """usage:
  python -m llm_jax train    --config=configs/gpt_shakespeare.py:cpu --workdir=DIR [--config.FIELD=V ...]
  python -m llm_jax eval     --workdir=DIR [--split=valid]
  python -m llm_jax generate --workdir=DIR --prompt="ROMEO:" [--max_new_tokens=200 --temperature=0.8
                             --top_k=0 --top_p=1.0 --num_samples=1 --seed=0]
  python -m llm_jax translate --workdir=DIR [--beam_size=5 --alpha=0.6 --max_len=N
                             --no_repeat_ngram_size=3] < src > hyp
                             (a seq2seq workdir; one line in, one line out, in input order)
  python -m llm_jax predict  --workdir=DIR --input=FILE --output=OUT.jsonl   (a fine-tuned
                             workdir's latest checkpoint; one JSON line out per line in, in input
                             order; a line starting with "{" is a JSON object, any other line is
                             plain text, which only single-sentence tasks read)
        glue:          {"sentence"} (cola, sst2; or plain text), {"sentence1", "sentence2"} (mrpc,
                       stsb, rte, wnli), {"question", "sentence"} (qnli): Hugging Face's glue
                       field names -> {"label", "probabilities": {label: p}}; stsb -> {"score"}
        token_tagging: {"words": [...]} or {"text": "..."} or plain text (split on whitespace)
                       -> {"words", "tags"}
        intent_slots:  the same inputs -> {"words", "intent", "intent_probability", "slots"}
                       (a word past data.seq_len sub-words is tagged "O")
        span_qa:       {"question", "context"[, "id"]} -> {"id" (the input's, or null),
                       "answer", "start", "end", "score"}: [start, end) characters of the
                       context, score the start + end logit ("" and nulls where no span is valid)
  python -m llm_jax sweep    --config=... --sweep=experiments/NAME/sweep.py --workdir=DIR
  python -m llm_jax download DATASET [--data_dir=DIR]   (tinyshakespeare, ptb, wikitext-2)
  python -m llm_jax export   --workdir=DIR --out=DIR   (ELMo biLM, n-gram ARPA, word2vec vectors)
  python -m llm_jax average  --workdir=DIR [--last=5 --out=DIR_avg5]   (mean of the last N
                             checkpoints' params, as a new workdir for eval/generate; never
                             overwrites --out, never changes DIR)
  python -m llm_jax import-hf --from=HF_DIR --workdir=DIR   (a Hugging Face MarianMTModel,
                             BERT, RoBERTa, ALBERT or GPT-2 directory: config.json,
                             model.safetensors (or its sharded index) and the tokenizer's files)
  python -m llm_jax export-hf --workdir=DIR --out=HF_DIR   (a BERT/RoBERTa/ALBERT/GPT-2 workdir
                             as a directory transformers' from_pretrained reads)
  python -m llm_jax lm-eval  --workdir=DIR --task=NAME [--shots=0 --seed=0 --limit=N --out=FILE
                             --stride=N --batch_size=16]   (a GPT workdir, zero-/few-shot: NAME
                             is wikitext2, ptb, lambada, sst2 or a .jsonl file; see
                             llm_jax/evaluation/lm_tasks.py)
  python -m llm_jax reproduce NAME [--runs_dir=DIR --only=ROW --dry_run] | --list
"""
USAGE_EXIT, FAILURE_EXIT = 2, 1

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
flags.DEFINE_integer("seed", 0, "generate: sampling seed. lm-eval: the draw of the shots.")
flags.DEFINE_string("data_dir", None, "download: destination (default $LLM_JAX_DATA_DIR).")
flags.DEFINE_string("out", None, "export, export-hf: directory to write the exported model to. "
                    "average: the new workdir (default: DIR_avgN beside DIR; must be new or empty). "
                    "lm-eval: a JSON file for the metrics and every example's scores.")
flags.DEFINE_integer("last", 5, "average: how many of the newest checkpoints to average (the "
                     "Transformer paper: 5 for base models, 20 for big).", lower_bound=1)
flags.DEFINE_integer("beam_size", None, "translate: beams (1: greedy; default: the config's).",
                     lower_bound=1)
flags.DEFINE_float("alpha", None, "translate: length-penalty exponent (default: the config's).")
flags.DEFINE_integer("no_repeat_ngram_size", None,
                     "translate: no n-gram of this size twice in an output (0: off; default: the "
                     "config's task.no_repeat_ngram_size).", lower_bound=0)
flags.DEFINE_integer("max_len", None, "translate: most tokens per output line (default: the "
                     "source length + config.task.decode_extra_len).", lower_bound=1)
flags.DEFINE_string("from", None, "import-hf: a Hugging Face model directory (safetensors).")
flags.DEFINE_string("task", None, "lm-eval: wikitext2, ptb, lambada, sst2 or a .jsonl file.")
flags.DEFINE_integer("shots", 0, "lm-eval: solved examples before each one (k-shot).", lower_bound=0)
flags.DEFINE_integer("limit", None, "lm-eval: score only the first N examples (perplexity tasks: "
                     "the first N lines).", lower_bound=1)
flags.DEFINE_integer("stride", None, "lm-eval, perplexity tasks: tokens between window starts "
                     "(default: half of model.max_len).", lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "lm-eval: sequences per forward pass.", lower_bound=1)
flags.DEFINE_string("input", None, "predict: a JSON-lines (or plain text) file of inputs.")
flags.DEFINE_string("output", None, "predict: the JSON-lines file to write (whole, or not at all).")
FLAGS = flags.FLAGS
HELP_HINT = "see python -m llm_jax --help"


class CliError(Exception):
    """A message for the user (one line) and the exit status to end with."""

    def __init__(self, message: str, exit_code: int = USAGE_EXIT):
        super().__init__(message)
        self.exit_code = exit_code


def _require(name):
    if getattr(FLAGS, name) is None:
        raise app.UsageError(f"--{name} is required for this command; {HELP_HINT}")
    return getattr(FLAGS, name)


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        got = f"got {argv[1]!r}" if len(argv) > 1 else "got none"
        raise app.UsageError(f"expected a command, one of {', '.join(COMMANDS)} ({got}); {HELP_HINT}")
    command, rest = argv[1], argv[2:]
    if not FLAGS["verbosity"].present:  # Orbax logs every file it writes at INFO
        logging.set_verbosity(logging.WARNING)
    if command == "download":
        from llm_jax.data import download
        if len(rest) != 1:
            raise app.UsageError(f"download takes one data set name, got {rest}; {HELP_HINT}")
        for path in download(rest[0], FLAGS.data_dir):
            print(path)
        return
    if rest:
        raise app.UsageError(f"unexpected arguments {rest}; {HELP_HINT}")
    workdir = _require("workdir")
    if command in ("train", "sweep") and _CONFIG.value is None:
        raise app.UsageError(f"--config is required for {command}; {HELP_HINT}")
    from llm_jax.training import commands
    if command == "train":
        commands.train(_CONFIG.value, workdir)
    elif command == "sweep":
        commands.sweep(_CONFIG.value, _require("sweep"), workdir)
    elif command == "export":
        print(commands.export_model(workdir, _require("out")))
    elif command == "average":
        print(json.dumps(commands.average_workdir(workdir, FLAGS.last, FLAGS.out), indent=2))
    elif command == "eval":
        print(json.dumps(commands.evaluate_workdir(workdir, FLAGS.split), indent=2))
    elif command == "translate":
        lines = [line.rstrip("\r\n") for line in sys.stdin]
        for text in commands.translate_lines(workdir, lines, beam_size=FLAGS.beam_size,
                                             alpha=FLAGS.alpha, max_len=FLAGS.max_len,
                                             no_repeat_ngram=FLAGS.no_repeat_ngram_size):
            print(text)
    elif command == "predict":
        print(json.dumps(commands.predict_file(workdir, _require("input"), _require("output")),
                         indent=2))
    elif command == "import-hf":
        print(json.dumps(commands.import_hf(_require("from"), workdir), indent=2))
    elif command == "export-hf":
        print(json.dumps(commands.export_hf(workdir, _require("out")), indent=2))
    elif command == "lm-eval":
        print(json.dumps(commands.lm_eval(
            workdir, _require("task"), shots=FLAGS.shots, seed=FLAGS.seed, limit=FLAGS.limit,
            out=FLAGS.out, stride=FLAGS.stride, batch_size=FLAGS.batch_size), indent=2))
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
    from llm_jax.training.guards import TrainingInterrupted
    from llm_jax.training.workdir_lock import WorkdirInUse
    try:
        main(argv)
    except app.UsageError as e:
        raise CliError(str(e)) from e
    except TrainingInterrupted as e:
        raise CliError(str(e), e.exit_code) from e
    except KeyboardInterrupt as e:  # a second Ctrl-C: out at once, no checkpoint
        raise CliError("interrupted", 130) from e
    except (ValueError, KeyError, OSError, FloatingPointError, CheckpointError, WorkdirInUse) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise CliError(str(message), FAILURE_EXIT) from e


# ---------------------------------------------------------------- flag parsing


def _flag_value(argv, name):
    """The value of --name=V / --name V / -name=V in argv, or None."""
    for i, arg in enumerate(argv[1:], start=1):
        for dashes in ("--", "-"):
            if arg.startswith(f"{dashes}{name}="):
                return arg.split("=", 1)[1]
            if arg == f"{dashes}{name}" and i + 1 < len(argv):
                return argv[i + 1]
    return None


def _traceback_wanted(argv) -> bool:
    value = _flag_value(argv, "verbosity") or _flag_value(argv, "v")
    try:
        return value is not None and int(value) >= 1
    except ValueError:
        return False


def _one_line(message: str) -> str:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return " ".join(lines) if lines else "unknown error"


def _load_config_file(spec: str):
    """get_config() of `spec` ("path[:variant]"), each failure as a CliError naming the file.

    Run only once flag parsing has failed, to say why: config_flags itself reports most of
    these as a traceback, or as an error about whichever flag it was parsing at the time.
    """
    path, *variant = spec.split(":", 1)
    flag = f"--config={spec}"
    if not os.path.isfile(path):
        raise CliError(f"{flag}: config file {path} not found (cwd {os.getcwd()})")
    try:
        module_spec = importlib.util.spec_from_file_location("llm_jax_cli_config", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise CliError(f"{flag}: syntax error in {e.filename} line {e.lineno}: {e.msg}") from e
    if not callable(getattr(module, "get_config", None)):
        raise CliError(f"{flag}: {path} defines no get_config(arg=None) function")
    try:
        return module.get_config(*variant)
    except Exception as e:  # noqa: BLE001  the config file's own code: say where it failed
        text = _one_line(str(e))
        where = traceback.extract_tb(e.__traceback__)[-1]
        raise CliError(text if spec in text else
                       f"{flag}: {type(e).__name__}: {text} ({where.filename}:{where.lineno})") from e


def _check_overrides(config, argv):
    """Names the first --config.FIELD override that config has no field for."""
    for arg in argv[1:]:
        name = arg.split("=", 1)[0].lstrip("-")
        if not name.startswith(("config.", "noconfig.")):  # --noconfig.x: a boolean's False
            continue
        dotted = name.split(".", 1)[1]
        node, parts = config, dotted.split(".")
        for i, part in enumerate(parts):
            here = ".".join(parts[:i + 1])
            if not isinstance(node, ConfigDict):
                raise CliError(f"--config.{dotted}: config.{'.'.join(parts[:i])} is a value, not a "
                               "section with fields")
            if part not in node:
                close = difflib.get_close_matches(part, list(node.keys()), n=1)
                hint = f" (did you mean config.{'.'.join([*parts[:i], close[0]])}?)" if close else ""
                raise CliError(f"--config.{dotted}: the config has no field {here}{hint}")
            node = node[part]


def _parse_flags(argv):
    """absl's flag parsing (config file and overrides included), with one-line errors."""
    spec = _flag_value(argv, "config")
    if spec is not None and not os.path.isfile(spec.split(":", 1)[0]):
        _load_config_file(spec)  # raises the not-found error
    try:
        rest = FLAGS(argv)
    except Exception as e:  # noqa: BLE001  diagnosed below; the original goes with --verbosity
        if spec is not None:
            _check_overrides(_load_config_file(spec), argv)
        if isinstance(e, flags.Error):
            raise CliError(_one_line(str(e))) from e
        raise CliError(f"{type(e).__name__} while parsing flags: {_one_line(str(e))}") from e
    if type(_CONFIG.value).__name__ == "_ErrorConfig":
        # config_flags keeps an OSError from get_config() (a file it reads) for later
        _load_config_file(spec)
    return rest


def run():
    # config_flags reads its --config.FIELD overrides from sys.argv itself, so no other argv
    argv = list(sys.argv)
    main_module = sys.modules.get("__main__")
    if main_module is not None and not main_module.__doc__:  # what absl's --help prints
        main_module.__doc__ = USAGE
    try:
        try:
            tune_malloc()  # before JAX allocates anything; see llm_jax/allocator.py
        except ValueError as e:
            raise CliError(str(e)) from e
        if argv[1:2] == ["reproduce"]:  # its own argparse flags, which absl would reject
            from llm_jax import reproduce
            sys.exit(reproduce.main(argv[2:]))
        app.run(_main_with_clean_errors, argv=argv, flags_parser=_parse_flags)
    except CliError as e:
        if _traceback_wanted(argv):
            traceback.print_exception(e.__cause__ or e)
        print(f"error: {_one_line(str(e))}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    run()
