"""SST-2 dev accuracy of one classifier fed random embeddings, word2vec vectors, ELMo, and both.

  python experiments/elmo_sst2/run.py --bilm=runs/elmo_small_export \
      [--word2vec=runs/word2vec_sg_neg/vectors.bin] [--train_subset=20000 --epochs=4 --seeds=0,1,2]
      [--out=runs/elmo_sst2] [--update_readme]

Every row uses the same training phrases, epochs, optimizer and seeds (one training run per
seed: initialisation, dropout and batch order); only the token input differs. The biLM is
frozen: its layers are computed once for every sentence and only the scalar mix and the
classifier train. The last row is the paper's recipe: the trainable embedding of the first row
concatenated with the ELMo scalar mix.

Writes OUT/results.json and nothing else (--out: a directory, default runs/elmo_sst2; a path
ending in .json names the results file itself). --update_readme is the maintainers' refresh of
the published numbers: it also rewrites the table of README.md and experiments/elmo_sst2/
results.json, which a run on other data or settings must not overwrite.
"""

import argparse
import json
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from llm_jax.data.sst2 import read_sst2
from llm_jax.tasks.classification import SentenceClassifier, classification_loss

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join("runs", "elmo_sst2")
RESULTS = "results.json"


def results_path(out):
    """OUT/results.json, or OUT itself when it names a .json file (as study.py passes it)."""
    return out if out.endswith(".json") else os.path.join(out, RESULTS)


def length_batches(lengths, batch_size, rng=None):
    """Index batches of similar lengths (less padding); shuffled batch order when rng is given."""
    order = np.argsort(lengths, kind="stable")
    if rng is not None:  # shuffle within ties of length too, so batches differ per epoch
        order = order[np.argsort(np.asarray(lengths)[order] + rng.random(len(order)) * 0.5,
                                 kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


def _pad_len(n):
    return max(16, -(-n // 16) * 16)  # few distinct shapes, so few compilations


class Features:
    """Builds a batch dict for a set of sentence indices, for one kind of token input."""

    def __init__(self, kind, per_sentence, dim):
        self.kind, self.per_sentence, self.dim = kind, per_sentence, dim

    def batch(self, idx, labels):
        items = [self.per_sentence[i] for i in idx]
        lens = [it.shape[-1] if self.kind == "ids" else it.shape[-2] for it in items]
        T = _pad_len(max(lens))
        mask = np.zeros((len(idx), T), bool)
        if self.kind == "ids":
            x = np.zeros((len(idx), T), np.int32)
        elif self.kind == "vectors":
            x = np.zeros((len(idx), T, self.dim), np.float32)
        else:
            x = np.zeros((len(idx), items[0].shape[0], T, self.dim), np.float32)
        for j, (it, n) in enumerate(zip(items, lens)):
            mask[j, :n] = True
            if self.kind == "layers":
                x[j, :, :n] = it
            else:
                x[j, :n] = it
        return {self.kind: x, "mask": mask, "labels": labels[idx]}


class Concatenated:
    """The batches of two Features over the same sentences, merged (for input_kind "ids+layers")."""

    def __init__(self, *parts):
        self.parts, self.per_sentence_tokens = parts, parts[0].per_sentence_tokens

    def batch(self, idx, labels):
        merged = {}
        for part in self.parts:
            merged.update(part.batch(idx, labels))
        return merged


def train_and_evaluate(name, model, feats_train, y_train, feats_dev, y_dev, args, seed):
    graphdef, params = nnx.split(model)
    opt = optax.adamw(args.lr, weight_decay=0.0)
    opt_state = opt.init(params)

    def loss_fn(p, batch, key):
        return classification_loss(nnx.merge(graphdef, p), batch, key)

    @jax.jit
    def step(p, s, batch, key):
        (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(p, batch, key)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, m

    @jax.jit
    def predict(p, batch):
        return jnp.argmax(nnx.merge(graphdef, p)(batch), -1)

    def dev_accuracy(p):
        correct = 0
        for idx in length_batches([len(s) for s in feats_dev.per_sentence_tokens], 256):
            correct += int((np.asarray(predict(p, feats_dev.batch(idx, y_dev))) == y_dev[idx]).sum())
        return correct / len(y_dev)

    rng = np.random.default_rng(seed)
    key, t0, history = jax.random.key(seed), time.time(), []
    lengths = [len(s) for s in feats_train.per_sentence_tokens]
    for epoch in range(args.epochs):
        for i, idx in enumerate(length_batches(lengths, args.batch_size, rng)):
            params, opt_state, m = step(params, opt_state, feats_train.batch(idx, y_train),
                                        jax.random.fold_in(key, epoch * 100000 + i))
        history.append(round(dev_accuracy(params), 4))
        print(f"  {name}: epoch {epoch + 1} dev accuracy {history[-1]:.4f} "
              f"(train loss {float(m['loss']):.3f}, {time.time() - t0:.0f}s)", flush=True)
    out = {"seed": seed, "dev_accuracy": history[-1], "dev_accuracy_per_epoch": history,
           "train_seconds": round(time.time() - t0, 1)}
    if model.mix is not None:
        mixed = nnx.merge(graphdef, params).mix
        out["scalar_mix_weights"] = [round(float(w), 4) for w in mixed.layer_weights()]
        out["scalar_mix_gamma"] = round(float(mixed.gamma[...]), 4)
    return out


def _with_tokens(feats, sentences):
    feats.per_sentence_tokens = sentences
    return feats


def random_features(train, dev, dim):
    vocab = {"<unk>": 0}
    for s in train.sentences:
        for w in s:
            vocab.setdefault(w, len(vocab))
    enc = lambda ss: [np.array([vocab.get(w, 0) for w in s], np.int32) for s in ss]  # noqa: E731
    return (_with_tokens(Features("ids", enc(train.sentences), dim), train.sentences),
            _with_tokens(Features("ids", enc(dev.sentences), dim), dev.sentences), len(vocab))


def word2vec_features(train, dev, path):
    from llm_jax.data.word_vectors_io import load_word2vec_format
    words, vectors = load_word2vec_format(path)
    index = {w: i for i, w in enumerate(words)}
    dim, hits = vectors.shape[1], [0, 0]

    def lookup(w):
        # SST-2 is lower-cased; WikiText-2 is not: fall back to the capitalised form.
        i = index.get(w, index.get(w.capitalize()))
        hits[i is None] += 1
        return vectors[i] if i is not None else np.zeros(dim, np.float32)

    enc = lambda ss: [np.stack([lookup(w) for w in s]) if s else np.zeros((0, dim), np.float32)  # noqa: E731
                      for s in ss]
    tr, dv = enc(train.sentences), enc(dev.sentences)
    coverage = hits[0] / max(sum(hits), 1)
    return (_with_tokens(Features("vectors", tr, dim), train.sentences),
            _with_tokens(Features("vectors", dv, dim), dev.sentences), dim, coverage)


def elmo_features(train, dev, bilm_dir):
    from llm_jax.models.elmo import load_bilm
    bilm = load_bilm(bilm_dir)
    t0 = time.time()
    out = []
    for split in (train, dev):
        order = np.argsort([len(s) for s in split.sentences], kind="stable")
        vecs = bilm.embed([split.sentences[i] for i in order], batch_size=128)
        per = [None] * len(order)
        for i, v in zip(order, vecs):
            per[i] = v.astype(np.float16)  # halves the cache; the mix runs in float32
        out.append(_with_tokens(Features("layers", per, bilm.dim), split.sentences))
    print(f"  elmo: cached {bilm.num_layers} layers x {bilm.dim} for "
          f"{len(train) + len(dev)} sentences in {time.time() - t0:.0f}s", flush=True)
    return out[0], out[1], bilm


def seed_list(text):
    """"0,1,2" -> [0, 1, 2]; argparse names the flag and the value when this raises."""
    return [int(x) for x in text.split(",")]


def write_readme_table(results, command):
    path = os.path.join(HERE, "README.md")
    seeds = results["args"]["seeds"]
    rows = [f"| token input | dev accuracy, mean of {len(seeds)} seed(s) | seed {', '.join(map(str, seeds))} "
            "| per epoch (first seed) |", "|---|---|---|---|"]
    for r in results["rows"]:
        rows.append(f"| {r['name']} | {100 * r['dev_accuracy']:.2f} | "
                    f"{', '.join(f'{100 * a:.2f}' for a in r['dev_accuracy_per_seed'])} | "
                    f"{', '.join(f'{100 * a:.1f}' for a in r['runs'][0]['dev_accuracy_per_epoch'])} |")
    for name, why in results.get("skipped", {}).items():
        rows.append(f"| {name} | skipped: {why} | | |")
    table = "\n".join(rows) + f"\n\nCommand: `{command}`\n"
    with open(path) as f:
        text = f.read()
    text = re.sub(r"<!-- results -->.*<!-- /results -->",
                  lambda _: f"<!-- results -->\n{table}<!-- /results -->", text, flags=re.S)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bilm", required=True, help="directory from `python -m llm_jax export`")
    p.add_argument("--word2vec", default="", help="vectors.bin/.txt from configs/word2vec.py")
    p.add_argument("--train_subset", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="picks the training subset")
    p.add_argument("--seeds", default=[0], type=seed_list,
                   help="comma-separated; every row trains once per seed (init, dropout, batch order)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"directory for {RESULTS} (or a .json path for the file itself)")
    p.add_argument("--update_readme", action="store_true",
                   help=f"also rewrite README.md's table and {RESULTS} beside this script")
    args = p.parse_args(argv)
    paths = [os.path.abspath(results_path(args.out))]
    if args.update_readme:
        paths.append(os.path.join(HERE, RESULTS))
    for path in paths:  # now, so that an unwritable --out fails before the training does
        os.makedirs(os.path.dirname(path), exist_ok=True)
    train = read_sst2("train").subset(args.train_subset, args.seed)
    dev = read_sst2("dev")
    print(f"SST-2: {len(train)} training phrases, {len(dev)} dev sentences", flush=True)
    y_tr, y_dev = train.labels, dev.labels
    results = {"train_phrases": len(train), "dev_sentences": len(dev), "args": vars(args),
               "rows": [], "skipped": {}}
    e_tr, e_dev, bilm = elmo_features(train, dev, args.bilm)
    r_tr, r_dev, vocab = random_features(train, dev, bilm.dim)
    # (name, input kind, width, training features, dev features, extra constructor args, record)
    specs = [(f"random init embeddings ({bilm.dim}-d, trained)", "ids", bilm.dim, r_tr, r_dev,
              {"vocab_size": vocab}, {})]
    if args.word2vec and os.path.exists(args.word2vec):
        w_tr, w_dev, dim, coverage = word2vec_features(train, dev, args.word2vec)
        specs.append((f"word2vec ({dim}-d, frozen; {100 * coverage:.1f}% of tokens covered)", "vectors",
                      dim, w_tr, w_dev, {}, {"word2vec": args.word2vec}))
    else:
        results["skipped"]["word2vec"] = (f"no vectors file at {args.word2vec!r}" if args.word2vec
                                          else "no --word2vec given")
    specs.append((f"ELMo scalar mix ({bilm.num_layers} layers x {bilm.dim}, frozen biLM)", "layers",
                  bilm.dim, e_tr, e_dev, {"num_layers": bilm.num_layers}, {"bilm": args.bilm}))
    specs.append((f"random init embeddings + ELMo scalar mix, concatenated ({bilm.dim} + {bilm.dim}-d)",
                  "ids+layers", bilm.dim, Concatenated(r_tr, e_tr), Concatenated(r_dev, e_dev),
                  {"vocab_size": vocab, "num_layers": bilm.num_layers}, {"bilm": args.bilm}))
    for name, kind, dim, f_tr, f_dev, extra, record in specs:
        runs = []
        for seed in args.seeds:
            model = SentenceClassifier(kind, dim, hidden=args.hidden, rngs=nnx.Rngs(seed), **extra)
            runs.append(train_and_evaluate(f"{kind} seed {seed}", model, f_tr, y_tr, f_dev, y_dev, args,
                                           seed))
        accs = [r["dev_accuracy"] for r in runs]
        results["rows"].append({"name": name, **record, "dev_accuracy": float(np.mean(accs)),
                                "dev_accuracy_per_seed": accs, "runs": runs})
    for path in dict.fromkeys(paths):
        with open(path, "w") as f:
            json.dump(results, f, indent=2)
    print(f"wrote {' and '.join(dict.fromkeys(paths))}")
    if args.update_readme:
        command = "python experiments/elmo_sst2/run.py " + " ".join(
            sys.argv[1:] if argv is None else argv)
        write_readme_table(results, command.strip())
    for r in results["rows"]:
        print(f"{r['name']}: dev accuracy {r['dev_accuracy']:.4f} (mean over seeds {args.seeds})")
    return results


if __name__ == "__main__":
    main()
