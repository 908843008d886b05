"""The n-gram "training" loop: count the training split, score valid and test, save the model.

`python -m llm_jax train --config=configs/ngram.py:kn5 --workdir=DIR` runs it (through
training/runners.py); DIR then holds config.json, tokenizer/, model.npz (every count table and
probability, so `evaluate` rescores without recounting), metrics.jsonl, summary.json,
samples.txt and, with config.task.write_arpa, model.arpa.

Each scored split reports two perplexities. `perplexity` scores every token, an out-of-vocabulary
word as `<unk>` (SRILM's convention for an open-vocabulary model, `-unk`); `perplexity_no_oov`
leaves the OOVs out of the sum and the count, as SRILM's `ngram -ppl` does with a closed
vocabulary (the probabilities are still this model's, <unk> mass included). `oov` counts them.
Both count one sentence end per newline of the text and no sentence start, SRILM's
words - OOVs + sentences. PTB's text carries its own <unk> and its test words are all in the
training vocabulary, so there oov = 0 and the two perplexities are equal.
"""

import json
import os
import time

import numpy as np

from llm_jax.data import load_tokenizer
from llm_jax.models.ngram import NGramLM, perplexity
from llm_jax.models.ngram_arpa import write_arpa
from llm_jax.tasks.ngram_lm import NGramLMTask
from llm_jax.training.config_schema import check_config
from llm_jax.training.experiment import SUMMARY_FILE, load_config, save_config
from llm_jax.training.metrics import MetricsWriter

MODEL_FILE = "model.npz"


def _scores(lm: NGramLM, tokens_and_oov, prefix: str) -> dict:
    tokens, oov = tokens_and_oov
    t0 = time.perf_counter()
    logp = lm.stream_logprobs(tokens)
    nll = float(-logp.mean())
    return {f"{prefix}/loss": nll, f"{prefix}/perplexity": float(np.exp(min(nll, 700.0))),
            f"{prefix}/perplexity_no_oov": perplexity(logp, exclude=oov),
            f"{prefix}/oov": int(oov.sum()),
            f"{prefix}/tokens": len(tokens), f"{prefix}/seconds": time.perf_counter() - t0}


def train(config, workdir: str) -> dict:
    check_config(config)
    os.makedirs(workdir, exist_ok=True)
    save_config(config, workdir)
    t0 = time.perf_counter()
    task = NGramLMTask(config, workdir)
    train_tokens = task.tokens(config.data.train_split)
    t_build = time.perf_counter()
    lm = task.fit(train_tokens)
    summary = {"build_seconds": time.perf_counter() - t_build, "train/tokens": len(train_tokens),
               "vocab_size": task.vocab_size,
               "ngrams": {str(k): t.size for k, t in enumerate(lm.tables[1:], start=2)}}
    if lm.discounts is not None:
        summary["discounts"] = lm.discounts.tolist()
    splits = [("eval", config.data.eval_split)]
    if config.data.test_split:
        splits.append(("test", config.data.test_split))
    for prefix, split in splits:
        summary.update(_scores(lm, task.tokens_and_oov(split), prefix))
        oov = summary[f"{prefix}/oov"]
        print(f"{split}: perplexity {summary[prefix + '/perplexity']:.2f}" + (
            f" ({oov} OOV tokens scored as <unk>; without them, SRILM's ngram -ppl: "
            f"{summary[prefix + '/perplexity_no_oov']:.2f})" if oov else ""), flush=True)
    lm.save(os.path.join(workdir, MODEL_FILE))
    if config.task.write_arpa:
        write_arpa(lm, os.path.join(workdir, "model.arpa"), task.tokenizer.words)
    if config.task.num_samples:
        rng = np.random.default_rng(config.seed)
        with open(os.path.join(workdir, "samples.txt"), "w") as f:
            for _ in range(config.task.num_samples):
                ids = lm.sample(rng)
                f.write(task.tokenizer.decode([i for i in ids if i != task.tokenizer.eos_id]) + "\n")
    summary["wall_time_sec"] = time.perf_counter() - t0
    writer = MetricsWriter(workdir, resume_step=-1)  # a rerun replaces the old row
    writer.write(0, {k: v for k, v in summary.items() if isinstance(v, (int, float))})
    writer.close()
    with open(os.path.join(workdir, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def load(workdir: str):
    """(NGramLM, word tokenizer) saved by `train`; reads nothing but the workdir."""
    path = os.path.join(workdir, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: train first (python -m llm_jax train "
                                f"--config=configs/ngram.py --workdir={workdir})")
    return NGramLM.load(path), load_tokenizer(os.path.join(workdir, "tokenizer"))


def evaluate(workdir: str, split=None) -> dict:
    """Perplexity of the saved model on `split` (default: the config's eval split)."""
    config = load_config(workdir)
    lm, _ = load(workdir)
    task = NGramLMTask(config, workdir)
    split = split or config.data.eval_split
    scores = _scores(lm, task.tokens_and_oov(split), "eval")
    return {"workdir": os.path.abspath(workdir), "split": split, **scores}


def export(workdir: str, out_dir: str) -> str:
    """Writes the model as OUT/model.arpa (for SRILM, KenLM and Kaldi; kn and modified_kn)."""
    lm, tokenizer = load(workdir)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "model.arpa")
    write_arpa(lm, path, tokenizer.words)
    return path


def generate(workdir, prompt, *, max_new_tokens=200, temperature=1.0, top_k=0, top_p=1.0,
             num_samples=1, seed=0) -> list[str]:
    """Continuations of `prompt` word by word; reads nothing but the workdir."""
    lm, tok = load(workdir)
    prompt_ids = [int(t) for t in tok.encode(prompt)]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num_samples):
        ids = list(prompt_ids)
        for _ in range(max_new_tokens):
            since_eos = ids[len(ids) - ids[::-1].index(tok.eos_id):] if tok.eos_id in ids else ids
            logp = lm.next_token_logprobs(since_eos)
            ids.append(_pick(logp, rng, temperature, top_k, top_p))
        out.append(tok.decode(ids))
    return out


def _pick(logp, rng, temperature, top_k, top_p) -> int:
    if temperature == 0:
        return int(np.argmax(logp))
    p = np.exp((logp - logp.max()) / temperature)
    order = np.argsort(-p)
    keep = np.zeros(len(p), bool)
    cum = np.cumsum(p[order]) / p.sum()
    n_keep = int(np.searchsorted(cum, top_p) + 1) if top_p < 1 else len(p)
    keep[order[: min(n_keep, top_k or len(p))]] = True
    p = np.where(keep, p, 0.0)
    return int(rng.choice(len(p), p=p / p.sum()))
