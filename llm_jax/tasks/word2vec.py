"""word2vec's task: the corpus and vocabulary, what a batch is, and the sparse SGD update.

Skip-gram or CBOW, each with negative sampling or hierarchical softmax. The update touches only
the rows a batch gathers: it takes the loss gradient w.r.t. those rows (in closed form, see
ops.word2vec.logistic_loss_and_row_grads) and scatter-adds `-lr * grad` into the (donated)
tables, which is word2vec's plain SGD done a batch at a time.
"""

import jax
import jax.numpy as jnp
import ml_collections

from llm_jax.data import word2vec_data as wd
from llm_jax.data.corpora import data_options, resolve_split
from llm_jax.data.huffman import build_huffman
from llm_jax.data.word2vec_batches import EpochBatches
from llm_jax.ops import word2vec as w2v_ops

ARCHITECTURES = ("sg", "cbow")
OBJECTIVES = ("neg", "hs")


def default_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name="word2vec",
        architecture="sg",   # "sg" (skip-gram) | "cbow" (mean of the context vectors)
        objective="neg",     # "neg" (negative sampling) | "hs" (hierarchical softmax)
        corpus_file="",      # a text file, one sentence per line; "" reads config.data.corpus
        max_sentences=0,     # train on the first N sentences (lines) only; 0: all (smoke runs)
        min_count=5, max_vocab=0,  # max_vocab 0: no cap
        window=5, negative=5, ns_exponent=0.75, sample=1e-3,
        alpha=0.025, min_alpha=1e-4, epochs=5,
        steps_per_call=32,   # SGD batches scanned inside one jit call
        # An output row used k > max_row_updates times in one batch gets its summed update scaled
        # by max_row_updates / k. Hierarchical softmax's root is on every path, so a whole batch
        # summed onto it diverges, where the reference tool's one-at-a-time updates do not. 0: off.
        max_row_updates=32,
        shuffle_chunks=False,  # shuffle examples across the batches of each chunk
        analogy_file="",     # "" : word2vec/questions-words.txt in the data directory
        similarity_file="",  # "" : word2vec/wordsim353.tsv in the data directory
        restrict_vocab=30000,
        neighbour_words=("king", "france", "computer", "river"),
    ))


def check_task_config(t):
    errors = []
    if t.architecture not in ARCHITECTURES:
        errors.append(f"config.task.architecture={t.architecture!r}: expected one of {ARCHITECTURES}")
    if t.objective not in OBJECTIVES:
        errors.append(f"config.task.objective={t.objective!r}: expected one of {OBJECTIVES}")
    for field in ("window", "epochs", "steps_per_call", "min_count"):
        if t[field] < 1:
            errors.append(f"config.task.{field}={t[field]} must be >= 1")
    for field in ("max_sentences", "max_vocab", "max_row_updates"):
        if t[field] < 0:
            errors.append(f"config.task.{field}={t[field]} must be >= 0 (0: no limit)")
    if t.objective == "neg" and t.negative < 1:
        errors.append(f"config.task.negative={t.negative} must be >= 1 for objective 'neg'")
    if not 0 <= t.min_alpha <= t.alpha:
        errors.append(f"config.task alpha={t.alpha}, min_alpha={t.min_alpha}: need 0 <= min_alpha <= alpha")
    if t.sample < 0:
        errors.append(f"config.task.sample={t.sample} must be >= 0 (0: no subsampling)")
    if errors:
        raise ValueError("bad config:\n  " + "\n  ".join(errors))


def read_training_sentences(config):
    """One sentence per line of `task.corpus_file`, else of `data.corpus`'s train split (a
    built-in name or a path, as for the language models); both in `data.encoding`."""
    t, d = config.task, config.data
    options = data_options(d)
    if t.corpus_file:
        return wd.read_sentences(t.corpus_file, options["encoding"]), t.corpus_file
    split = resolve_split(d.corpus, d.train_split, **options)
    source = str(split.path)
    sentences = wd.split_sentences(split.read().splitlines())
    if not sentences:
        raise ValueError(f"corpus {source} is empty: it holds no words")
    return sentences, source


# Every row index is a valid word or node id (padding uses row 0 with weight 0), so the gathers
# and scatters skip XLA's bounds clamping: about 20% faster updates on CPU (measured with
# experiments/word2vec/profile_sgns.py).
def _gather(table, idx):
    return table.at[idx].get(mode="promise_in_bounds")


def _scatter_add(table, idx, update):
    return table.at[idx].add(update, mode="promise_in_bounds")


def _repeat_scale(rows, weights, num_rows, cap):
    """min(1, cap / k) for each entry of `rows`, k being how often its row occurs in the batch."""
    counts = jnp.zeros((num_rows,), jnp.float32).at[rows.ravel()].add(
        (weights > 0).astype(jnp.float32).ravel(), mode="promise_in_bounds")
    return jnp.minimum(1.0, cap / jnp.maximum(_gather(counts, rows), 1.0))[..., None]


class Word2VecTask:
    @staticmethod
    def default_config():
        return default_config()

    def __init__(self, config, workdir=None):
        check_task_config(config.task)
        t = self.cfg = config.task
        sentences, self.source = read_training_sentences(config)
        if t.max_sentences:
            sentences = sentences[:t.max_sentences]
        self.vocab = wd.build_vocab(sentences, t.min_count, t.max_vocab, source=self.source)
        self.corpus = wd.encode(sentences, self.vocab)
        self.tree = build_huffman(self.vocab.counts) if t.objective == "hs" else None
        noise = wd.AliasSampler(wd.noise_distribution(self.vocab.counts, t.ns_exponent))
        self.batches = EpochBatches(
            self.corpus, wd.keep_probabilities(self.vocab.counts, t.sample), noise,
            architecture=t.architecture, window=t.window,
            negative=t.negative if t.objective == "neg" else 0,
            batch_size=config.train.batch_size, steps=t.steps_per_call, seed=config.seed,
            shuffle=t.shuffle_chunks)

    @property
    def vocab_size(self):
        return len(self.vocab)

    @property
    def output_rows(self):
        return self.tree.num_inner if self.tree is not None else len(self.vocab)

    def make_update(self):
        """(input, output, chunk) -> (input, output, loss sum, example count): one chunk of SGD steps."""
        arch, tree, max_row_updates = self.cfg.architecture, self.tree, self.cfg.max_row_updates
        if tree is not None:
            points = jnp.asarray(tree.points)
            codes = jnp.asarray(tree.codes, jnp.float32)
            path_mask = jnp.asarray(tree.mask(), jnp.float32)

        def step(tables, batch):
            w_in, w_out = tables
            weights_B = batch["weights"]
            if arch == "sg":
                rows_in = batch["inputs"]
                h_BD = _gather(w_in, rows_in)
            else:
                ctx_BC = batch["inputs"]
                ctx_mask_BC = (ctx_BC >= 0).astype(jnp.float32)
                rows_in = jnp.maximum(ctx_BC, 0)
                h_BD = w2v_ops.cbow_mean(_gather(w_in, rows_in), ctx_mask_BC)
            targets_B = batch["targets"]
            if tree is None:
                negs_BK = batch["negatives"]
                rows_out = jnp.concatenate([targets_B[:, None], negs_BK], axis=1)
                # The reference tool skips a noise draw that hit the true word.
                w_BS = jnp.concatenate([jnp.ones_like(negs_BK[:, :1], jnp.float32),
                                        (negs_BK != targets_B[:, None]).astype(jnp.float32)], axis=1)
                out_weights = w_BS * weights_B[:, None]
                out_BSD = _gather(w_out, rows_out)
                loss, (d_h, d_out) = w2v_ops.logistic_loss_and_row_grads(
                    h_BD, out_BSD, w2v_ops.negative_sampling_labels(out_BSD), out_weights)
            else:
                rows_out = points[targets_B]
                out_weights = path_mask[targets_B] * weights_B[:, None]
                loss, (d_h, d_out) = w2v_ops.logistic_loss_and_row_grads(
                    h_BD, _gather(w_out, rows_out), 1.0 - codes[targets_B], out_weights)
            lr = batch["lr"]
            if max_row_updates:
                d_out = d_out * _repeat_scale(rows_out, out_weights, w_out.shape[0], max_row_updates)
            w_out = _scatter_add(w_out, rows_out, -lr * d_out)
            if arch == "sg":
                w_in = _scatter_add(w_in, rows_in, -lr * d_h)
            else:
                # gensim (cbow_mean=1) adds the full error of the mean to every context word.
                w_in = _scatter_add(w_in, rows_in, -lr * d_h[:, None, :] * ctx_mask_BC[..., None])
            return (w_in, w_out), (loss, jnp.sum(weights_B))

        def update(w_in, w_out, chunk):
            (w_in, w_out), (losses, counts) = jax.lax.scan(step, (w_in, w_out), chunk)
            return w_in, w_out, jnp.sum(losses), jnp.sum(counts)

        return update
