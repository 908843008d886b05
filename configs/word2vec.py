"""word2vec on WikiText-2 train: skip-gram / CBOW x negative sampling / hierarchical softmax.

Hyperparameters are gensim's defaults (dim 100, window 5, negative 5, sample 1e-3, min_count 5,
alpha 0.025 -> 1e-4, 5 epochs), so experiments/word2vec/compare.py can train both side by side.

  sg_neg, sg_hs, cbow_neg, cbow_hs: the four variants (default sg_neg)
  tiny: sg_neg, 2 epochs on the first 2,000 lines of WikiText-2 train (seconds; first contact)
"""

from llm_jax.training.config_schema import default_config

VARIANTS = ("sg_neg", "sg_hs", "cbow_neg", "cbow_hs", "tiny")


def get_config(arg=None):
    arg = arg or "sg_neg"
    if arg not in VARIANTS:
        raise ValueError(f"configs/word2vec.py:{arg}: unknown variant; expected one of {VARIANTS}")
    c = default_config("word2vec", "word2vec")
    c.data.corpus, c.data.train_split = "wikitext-2", "train"
    c.model.dim = 100
    c.task.update(window=5, negative=5, sample=1e-3, min_count=5, alpha=0.025, min_alpha=1e-4,
                  epochs=5, restrict_vocab=30000)
    # Examples (skip-gram pairs, CBOW windows) per SGD step: small enough that summing the
    # updates of a word repeated within a batch stays close to gensim's one-at-a-time SGD.
    c.train.update(batch_size=1024, log_every=20, keep_checkpoints=2)
    if arg == "tiny":
        c.task.update(min_count=2, epochs=2, steps_per_call=4, max_sentences=2000)
        c.train.update(batch_size=256, log_every=5, progress_bar=False)
        return c
    arch, objective = arg.split("_")
    c.task.update(architecture=arch, objective=objective)
    if arch == "cbow":
        # Neighbouring CBOW windows share most context words, so a batch of consecutive windows
        # sums many updates of the same rows computed from stale values: at 1,024 unshuffled,
        # WordSim-353 rho fell ~5 points below gensim's; 256 with shuffled chunks matches it
        # (experiments/word2vec/README.md).
        c.train.batch_size = 256
        c.task.shuffle_chunks = True
    return c
