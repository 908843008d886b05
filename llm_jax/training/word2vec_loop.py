"""word2vec's own loop: plain SGD on the rows each batch touches, not dense grads + Optax.

Per jit call, one chunk of `task.steps_per_call` batches is scanned with the two tables donated,
so XLA scatter-adds into them in place. The numpy pipeline builds the next chunk in a thread
meanwhile. An Orbax checkpoint is written at every epoch end (resume starts the next epoch);
at the end the vectors are written in word2vec's text and binary formats and evaluated.
"""

import json
import os
import queue
import shutil
import threading
import time

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from llm_jax.data.paths import require_file
from llm_jax.data.word_vectors_io import load_word2vec_format, save_word2vec_format
from llm_jax.evaluation.word_vectors import WordVectors
from llm_jax.models import build_model
from llm_jax.tasks.word2vec import Word2VecTask
from llm_jax.training import sharding
from llm_jax.training.checkpoints import Checkpointer
from llm_jax.training.experiment import SUMMARY_FILE, load_config, save_config
from llm_jax.training.metrics import MetricsWriter
from llm_jax.training.runners import NotSupported

VECTORS_TEXT, VECTORS_BINARY = "vectors.txt", "vectors.bin"


def _prefetch(iterator, depth=2):
    """Runs `iterator` in a thread, `depth` items ahead; exceptions are re-raised in the caller."""
    q, done = queue.Queue(depth), object()

    def work():
        try:
            for item in iterator:
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: B036 (handed to the consumer)
            q.put(e)

    threading.Thread(target=work, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _tables(config, task, mesh):
    with config.unlocked():
        config.model.vocab_size = task.vocab_size
        config.model.output_rows = task.output_rows
    model = build_model(config.model, rngs=nnx.Rngs(params=config.seed))
    rep = sharding.replicated(mesh)
    return {"input": jax.device_put(model.input[...], rep),
            "output": jax.device_put(model.output[...], rep)}


def _chunk_shardings(mesh, example_chunk):
    """Batch axis (1) over "data"; the per-step learning rates replicated."""
    def spec(name, x):
        if name == "lr":
            return NamedSharding(mesh, P())
        return NamedSharding(mesh, P(None, "data", *([None] * (x.ndim - 2))))
    return {k: spec(k, v) for k, v in example_chunk.items()}


def train(config, workdir: str) -> dict:
    t0 = time.perf_counter()
    config = ml_collections.ConfigDict(config.to_dict())
    os.makedirs(workdir, exist_ok=True)
    t, tc = config.task, config.train
    task = Word2VecTask(config, workdir)
    for path in _eval_files(t):  # fail before training, not after it
        if not os.path.isfile(path):
            raise FileNotFoundError(f"evaluation file {path} not found (config.task.analogy_file / "
                                    "similarity_file)")
    mesh = sharding.make_mesh(config.mesh)
    if tc.batch_size % mesh.shape["data"]:
        raise ValueError(f"config.train.batch_size={tc.batch_size} is not divisible by the "
                         f"{mesh.shape['data']} devices of the mesh's data axis")
    tables = _tables(config, task, mesh)
    save_config(config, workdir)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=tc.keep_checkpoints)
    start_epoch = 0
    if ckpt.latest_step() is not None:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                                tables)
        tables, data_state = ckpt.restore(abstract)
        start_epoch = int(data_state["epoch"])
    writer = MetricsWriter(workdir, resume_step=start_epoch)
    rep = sharding.replicated(mesh)
    update, chunk_sh = None, None
    total_words = task.corpus.raw_words * t.epochs
    bar = tqdm(total=total_words, initial=task.corpus.raw_words * start_epoch, unit="word",
               unit_scale=True, desc="word2vec", dynamic_ncols=True, disable=not tc.progress_bar)
    w_in, w_out = tables["input"], tables["output"]
    t_train, words_trained = 0.0, 0
    for epoch in range(start_epoch, t.epochs):
        t_epoch = time.perf_counter()
        loss_sum, examples, since_log = 0.0, 0.0, (0.0, 0.0)
        chunks = task.batches.epoch(epoch, t.epochs, t.alpha, t.min_alpha)
        for k, (chunk, words) in enumerate(_prefetch(chunks)):
            if update is None:
                chunk_sh = _chunk_shardings(mesh, chunk)
                update = jax.jit(task.make_update(), donate_argnums=(0, 1),
                                 in_shardings=(rep, rep, chunk_sh), out_shardings=rep)
            w_in, w_out, loss, n = update(w_in, w_out, jax.device_put(chunk, chunk_sh))
            since_log = (since_log[0] + loss, since_log[1] + n)  # device values: no sync here
            bar.update(words)
            if (k + 1) % tc.log_every == 0:
                part, c = (float(x) for x in jax.device_get(since_log))
                loss_sum, examples, since_log = loss_sum + part, examples + c, (0.0, 0.0)
                bar.set_postfix(loss=f"{part / max(c, 1):.4f}", lr=f"{float(chunk['lr'][-1]):.5f}")
        part, c = (float(x) for x in jax.device_get(since_log))
        loss_sum, examples = loss_sum + part, examples + c
        jax.block_until_ready(w_in)
        seconds = time.perf_counter() - t_epoch
        t_train += seconds
        words_trained += task.corpus.raw_words
        row = {"train/loss": loss_sum / max(examples, 1), "train/words_per_sec":
               task.corpus.raw_words / seconds, "train/examples": examples, "epoch": epoch + 1}
        if not np.isfinite(row["train/loss"]):
            raise FloatingPointError(f"word2vec train/loss is {row['train/loss']} in epoch {epoch + 1}; "
                                     "lower config.task.alpha or config.train.batch_size")
        writer.write(epoch + 1, row)
        bar.write(f"epoch {epoch + 1}: loss {row['train/loss']:.4f} "
                  f"{row['train/words_per_sec']:.0f} words/s")
        ckpt.save(epoch + 1, {"input": w_in, "output": w_out}, {"epoch": epoch + 1})
    bar.close()
    ckpt.close()
    writer.close()
    words = task.vocab.words
    vectors = np.asarray(jax.device_get(w_in))
    save_word2vec_format(os.path.join(workdir, VECTORS_TEXT), words, vectors, binary=False)
    save_word2vec_format(os.path.join(workdir, VECTORS_BINARY), words, vectors, binary=True)
    summary = {"vocab_size": len(words), "corpus": task.source, "raw_words": task.corpus.raw_words,
               "epochs": t.epochs, "train_seconds": t_train,
               # reading, vocabulary, training, checkpoints and export; not the evaluation below
               "wall_time_sec": time.perf_counter() - t0,
               "train_words_per_sec": words_trained / t_train if t_train else float("nan")}
    t_eval = time.perf_counter()
    summary.update(evaluate_vectors(config.task, WordVectors(words, vectors)))
    summary["eval_seconds"] = time.perf_counter() - t_eval
    with open(os.path.join(workdir, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def _eval_files(task_cfg):
    """(analogy file, similarity file): the config's, else the copies in the data directory."""
    analogy = task_cfg.analogy_file or str(require_file("word2vec", "questions-words.txt"))
    similarity = task_cfg.similarity_file or str(require_file("word2vec", "wordsim353.tsv"))
    return analogy, similarity


def evaluate_vectors(task_cfg, wv: WordVectors) -> dict:
    analogy_file, similarity_file = _eval_files(task_cfg)
    analogy = wv.evaluate_analogies(analogy_file, restrict_vocab=task_cfg.restrict_vocab)
    similarity = wv.evaluate_similarity(similarity_file)
    neighbours = {w: [n for n, _ in wv.nearest(w, 8)] for w in task_cfg.neighbour_words if w in wv.index}
    return {"analogy_accuracy": analogy["accuracy"], "analogy": analogy,
            "wordsim_spearman": similarity["spearman"], "wordsim": similarity, "neighbours": neighbours}


def _vectors(workdir) -> WordVectors:
    path = os.path.join(workdir, VECTORS_BINARY)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: train first (python -m llm_jax train ...)")
    return WordVectors(*load_word2vec_format(path, binary=True))


def evaluate(workdir, split=None) -> dict:
    """Re-evaluates the vectors a run saved (word2vec has no held-out split: `split` must be None)."""
    if split is not None:
        raise ValueError(f"--split={split!r}: word2vec vectors are evaluated on the analogy and "
                         "similarity files of config.task, not on a corpus split")
    config = load_config(workdir)
    return {"workdir": os.path.abspath(workdir), **evaluate_vectors(config.task, _vectors(workdir))}


def generate(workdir, prompt, **options):
    raise NotSupported("word2vec learns word vectors and does not generate text; "
                       "llm_jax.load(workdir) returns them (WordVectors.nearest, .evaluate_*)")


def export(workdir, out_dir) -> str:
    """Copies the vectors in word2vec's text and binary formats (what gensim reads) to out_dir."""
    _vectors(workdir)  # fails with the train-first message when there are none
    os.makedirs(out_dir, exist_ok=True)
    for name in (VECTORS_TEXT, VECTORS_BINARY):
        shutil.copyfile(os.path.join(workdir, name), os.path.join(out_dir, name))
    return out_dir


def load(workdir):
    """(WordVectors, vocabulary words): the trained input vectors."""
    vectors = _vectors(workdir)
    return vectors, vectors.words
