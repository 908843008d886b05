"""The full set of config fields with defaults, and a check that names any unknown key.

Experiment configs start from `default_config(model_name, task_name)` and change fields; the
model and task sections come from the model's and the task's own `default_config()`. The result is
locked, so a misspelt field in a config file or on the command line fails loudly instead of
being ignored.
"""

import difflib
import importlib.util
import pathlib

import ml_collections

from llm_jax.models import default_model_config
from llm_jax.tasks import default_task_config

WARMUP_BOTH = ("config.optimizer.warmup_steps={steps} and config.optimizer.warmup_fraction="
               "{fraction} are both set: give one (the other 0)")


def config_from_file(path, variant=None) -> ml_collections.ConfigDict:
    """`get_config(variant)` of a config file: how one config builds on another's recipe
    (configs/gpt3.py on gpt2.py's) and how a study's run is read."""
    spec = importlib.util.spec_from_file_location(f"llm_jax_config_{pathlib.Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def default_config(model: str = "gpt", task: str = "causal_lm") -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # A workdir or checkpoints/<step> dir: a fresh run copies every parameter whose path and
    # shape match from it (training/init_from.py); ignored when resuming.
    c.init_from = ""
    # With init_from: source parameter P is loaded into PREFIX/P ("backbone": a pre-trained
    # bert run into the backbone of a model.name="finetune" model); "": the same paths.
    c.init_from_prefix = ""
    # With init_from: True takes the model section init_from_prefix fills (model.backbone for
    # "backbone", model for "") from init_from's config.json, all but the run-time fields
    # (dropout, dtype, remat) this config sets: no need to restate a published model's shape
    # (training/init_from.py, model_from_init_from).
    c.init_from_model = False
    # model.dtype="bfloat16" with param_dtype="float32" is mixed precision: bfloat16
    # activations, float32 parameters and optimizer state (the GPU configs' default).
    c.model = default_model_config(model)
    c.data = dict(
        source="files",          # "files" (LLM_JAX_DATA_DIR) | "tfds"
        corpus="tinyshakespeare",  # for files: tinyshakespeare | ptb | wikitext-2 | wikitext-103,
                                   # or a path: a directory of train.txt, valid.txt[, test.txt]
                                   # or one file
        encoding="utf-8",        # of the corpus files (e.g. "latin-1", "cp1252")
        valid_fraction=0.1,      # one file: its last lines, this share, are the valid split
        token_cache_dir="",      # "": WORKDIR/tokens; a directory to share token files between runs
        tfds_name="",            # for tfds, e.g. "tiny_shakespeare", "lm1b"
        train_split="train", eval_split="valid",
        test_split="",           # also scored at the end of training when set (e.g. "test")
        tokenizer="char",        # "char" | "word" | "sentencepiece" | "gpt2_bpe" (OpenAI's
                                 # GPT-2 BPE); masked_lm: "wordpiece" | "roberta_bpe" | "albert_sp"
        vocab_file="",           # masked_lm, gpt2_bpe: vocab.txt / vocab.json / spiece.model; "":
                                 # the shared files of the data directory; "fit": learnt from train
        merges_file="",          # roberta_bpe, gpt2_bpe: merges.txt; "": the shared GPT-2 one
        min_count=1,             # word tokenizer
        vocab_size=8000, sp_model_type="bpe",  # sentencepiece ("bpe" | "unigram")
        seq_len=256,
    )
    c.task = default_task_config(task)
    c.optimizer = dict(
        name="adamw", lr=6e-4, min_lr=6e-5, schedule="cosine",  # constant|cosine|linear|inverse_sqrt
        warmup_steps=100, decay_steps=0,  # 0: decay over train.steps
        # > 0: warm up over round(warmup_fraction * train.steps) instead (train.steps as resolved
        # from train.epochs); then warmup_steps must be 0
        warmup_fraction=0.0,
        b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1,
        # Weight decay goes to params of rank >= 2 (not counting a stacked "layers" axis); these
        # name suffixes are excluded too, for multi-dimensional biases such as qkv_bias.
        no_decay=("bias", "scale"),
        momentum=0.0, grad_clip=1.0,
        lr_decay=1.0, decay_after_epochs=0,  # schedule "epoch_decay": lr * lr_decay ** max(e+1-after, 0)
        # A tuple of optimizer.param_group(pattern, lr_mult=, weight_decay=, frozen=); the first
        # group whose regex is found in a param's "/"-joined path wins; the rest use the above.
        param_groups=(),
        # ELECTRA/BEiT layer-wise lr decay: layer i of L gets lr * layer_decay ** (L - i), params
        # matching the embed pattern lr * layer_decay ** (L + 1), others lr. A layer's index is its
        # slice of a stacked "layers" axis, or the number the layer pattern captures.
        layer_decay=1.0,
        layer_decay_embed_pattern=r"(^|/)(embed|positions|table|token_encoder)(/|$)",
        layer_decay_layer_pattern=r"cells/(\d+)/",  # recurrent stacks (rnn_lm, elmo)
    )
    c.train = dict(
        steps=5000,
        epochs=0,               # > 0: train for this many passes over the data (replaces steps)
        batch_size=64, grad_accum=1, log_every=10, eval_every=250,
        eval_batches=20,        # batches per periodic eval; the final eval uses the whole split
        checkpoint_every=500, keep_checkpoints=3, progress_bar=True,
        best_metric="",         # e.g. "eval/accuracy": also keep the best checkpoint by it in
        best_mode="max",        # WORKDIR/checkpoints_best ("max" or "min")
        # > 0, with best_metric: stop after this many periodic evals in a row without a new best
        # (a final checkpoint, the final evals and summary.json as at a normal end); 0: off
        early_stop_patience=0,
    )
    c.mesh = dict(data=-1, fsdp=1, tensor=1)  # -1: whatever devices the others leave
    c.lock()
    return c


def _unknown_keys(cfg, ref, prefix=""):
    for key in cfg.keys():
        path = f"{prefix}{key}"
        if key not in ref:
            close = difflib.get_close_matches(key, list(ref.keys()), n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
            yield f"unknown config field {path}{hint}"
        elif isinstance(ref[key], ml_collections.ConfigDict):
            if not isinstance(cfg[key], (ml_collections.ConfigDict, dict)):
                yield f"config field {path} must be a section, got {cfg[key]!r}"
            else:
                yield from _unknown_keys(cfg[key], ref[key], path + ".")


def reference_config(config) -> ml_collections.ConfigDict:
    """default_config() of the config's model and task; a fine-tuning model's `backbone`
    section is the defaults of model.backbone.name's family (bert, gpt, elmo), not bert's."""
    ref = default_config(config.model.get("name", "gpt"), config.task.get("name", "causal_lm"))
    backbone = config.model.get("backbone")
    if isinstance(ref.model.get("backbone"), ml_collections.ConfigDict) and isinstance(
            backbone, (ml_collections.ConfigDict, dict)):
        name = backbone.get("name", ref.model.backbone.name)
        if name != ref.model.backbone.name:
            try:
                family = default_model_config(name)
            except ValueError:
                family = None  # an unknown name: the model's own check says which it reads
            if family is not None:
                with ref.unlocked():
                    ref.model.backbone = family
    return ref


def check_config(config):
    """Raises ValueError naming every unknown field and bad value it can spot cheaply."""
    errors = list(_unknown_keys(config, reference_config(config)))
    t, o = config.train, config.optimizer
    for field in ("steps", "batch_size", "grad_accum", "log_every", "eval_every",
                  "checkpoint_every", "keep_checkpoints"):
        # keep_checkpoints=0 would delete every checkpoint, the final one included.
        if t.get(field, 1) < 1:
            errors.append(f"config.train.{field}={t[field]} must be >= 1")
    if t.get("epochs", 0) < 0:
        errors.append(f"config.train.epochs={t.epochs} must be >= 0")
    if t.get("early_stop_patience", 0) < 0:
        errors.append(f"config.train.early_stop_patience={t.early_stop_patience} must be >= 0")
    elif t.get("early_stop_patience", 0) and not t.get("best_metric"):
        errors.append(f"config.train.early_stop_patience={t.early_stop_patience} needs "
                      "config.train.best_metric: the metric whose best it waits for")
    if t.get("best_mode", "max") not in ("max", "min"):
        errors.append(f"config.train.best_mode={t.best_mode!r} must be 'max' or 'min'")
    if t.get("grad_accum", 1) >= 1 and t.batch_size % t.get("grad_accum", 1):
        errors.append(f"config.train.batch_size={t.batch_size} is not divisible by "
                      f"config.train.grad_accum={t.grad_accum}")
    if config.get("init_from_prefix") and not config.get("init_from"):
        errors.append(f"config.init_from_prefix={config.init_from_prefix!r} without "
                      "config.init_from: nothing would be loaded; set config.init_from to the "
                      "pre-trained workdir")
    if config.get("init_from_model") and not config.get("init_from"):
        errors.append("config.init_from_model=True without config.init_from: there is no "
                      "config.json to read the model from")
    if config.get("seed", 0) < 0:  # numpy's generators reject negative seeds only much later
        errors.append(f"config.seed={config.seed} must be >= 0")
    if not o.get("lr", 1.0) > 0:  # `not >` also catches NaN
        errors.append(f"config.optimizer.lr={o.lr} must be > 0")
    for field in ("warmup_steps", "grad_clip", "weight_decay"):  # grad_clip=0: no clipping
        if not o.get(field, 0) >= 0:
            errors.append(f"config.optimizer.{field}={o[field]} must be >= 0")
    if not 0 <= o.get("warmup_fraction", 0.0) <= 1:
        errors.append(f"config.optimizer.warmup_fraction={o.warmup_fraction} must be in [0, 1]")
    elif o.get("warmup_fraction", 0.0) > 0 and o.get("warmup_steps", 0) > 0:
        errors.append(WARMUP_BOTH.format(steps=o.warmup_steps, fraction=o.warmup_fraction))
    if config.data.get("seq_len", 1) < 1:
        errors.append(f"config.data.seq_len={config.data.seq_len} must be >= 1")
    # seq2seq batches by token count and sentence length, not in windows of seq_len
    windows = config.task.get("name") != "seq2seq"
    if windows and config.data.seq_len > config.model.get("max_len", config.data.seq_len):
        errors.append(f"config.data.seq_len={config.data.seq_len} exceeds "
                      f"config.model.max_len={config.model.max_len}")
    # The batch is sharded over ("data", "fsdp") (sharding.RULES["batch"]), so both sizes must
    # divide it; -1 is resolved as make_mesh does, without building a mesh. n-gram models never
    # touch a device, so they skip this and do not start a JAX backend just to count devices.
    mesh = config.get("mesh")
    if mesh is not None and config.model.get("name") != "ngram":
        import jax  # here, not at the top: the config schema is read by code that needs no JAX

        sizes = {a: int(mesh.get(a, 1)) for a in ("data", "fsdp", "tensor")}
        auto = [a for a, s in sizes.items() if s == -1]
        bad = [a for a, s in sizes.items() if s < 1 and s != -1]
        rest = 1
        for s in sizes.values():
            rest *= s if s != -1 else 1
        if bad:
            errors.append(f"config.mesh.{bad[0]}={sizes[bad[0]]} must be >= 1, or -1 for the "
                          "devices the other axes leave")
        elif len(auto) > 1:
            errors.append(f"config.mesh: at most one of data/fsdp/tensor may be -1, got {sizes}")
        elif auto and jax.device_count() % rest:
            errors.append(f"config.mesh={sizes}: {jax.device_count()} devices are not "
                          f"divisible by {rest}")
        else:
            if auto:
                sizes[auto[0]] = jax.device_count() // rest
            dp = sizes["data"] * sizes["fsdp"]
            if t.batch_size >= 1 and t.batch_size % dp:
                errors.append(f"config.train.batch_size={t.batch_size} is not divisible by the "
                              f"data-parallel size config.mesh.data*fsdp = {sizes['data']}*"
                              f"{sizes['fsdp']} = {dp} (the batch is split over both)")
    if errors:
        raise ValueError("bad config:\n  " + "\n  ".join(errors))
