"""Does a trained seq2seq model read its source? Two numbers per workdir (its latest checkpoint):

  encoder_spread   the encoder output's standard deviation across the real positions of a
                   dialogue, averaged over features and dialogues: 0 means the encoder gives
                   the same vector everywhere (collapsed), so nothing of the source reaches the
                   decoder;
  source_gain      target NLL per token with each summary paired with another dialogue, minus
                   the NLL with its own: how much the source helps (0: a language model of
                   summaries that ignores it).

  python experiments/samsum_summarisation/source_use.py \
      --workdirs=runs/samsum_small_postln,runs/samsum_small --examples=64 \
      --out=runs/samsum_summarisation/source_use.json
"""

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import llm_jax
from llm_jax.data.parallel_text import read_parallel
from llm_jax.ops.losses import cross_entropy_per_token
from llm_jax.tasks.seq2seq import special_ids


def padded(rows, pad, width=None):
    width = width or max(len(r) for r in rows)
    out = np.full((len(rows), width), pad, np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def target_nll(model, src, mask, tgt_in, tgt_out, weights):
    logits = model(jnp.asarray(src), jnp.asarray(mask), jnp.asarray(tgt_in))
    _, nll = cross_entropy_per_token(logits, jnp.asarray(tgt_out))
    return float(jnp.sum(nll * weights) / jnp.sum(weights))


def measure(workdir, dialogues, summaries):
    model, tokenizer, config = llm_jax.load(workdir)
    ids = special_ids(tokenizer, config.task)
    max_len = config.model.max_len
    src_rows = [list(x[:max_len - 1]) + [ids["eos"]] for x in tokenizer.encode_lines(dialogues)]
    tgt_rows = [list(x[:max_len - 1]) for x in tokenizer.encode_lines(summaries)]
    src = padded(src_rows, ids["pad"])
    mask = src != ids["pad"]
    mask[:, 0] = True
    tgt_in = padded([[ids["bos"]] + t for t in tgt_rows], ids["pad"])
    tgt_out = padded([t + [ids["eos"]] for t in tgt_rows], ids["pad"], tgt_in.shape[1])
    weights = jnp.asarray(tgt_out != ids["pad"], jnp.float32)
    encoded = np.asarray(model.encode(jnp.asarray(src), jnp.asarray(mask)), np.float64)
    spread = np.mean([encoded[i, :len(r)].std(0).mean() for i, r in enumerate(src_rows)])
    own = target_nll(model, src, mask, tgt_in, tgt_out, weights)
    rolled = target_nll(model, np.roll(src, 1, 0), np.roll(mask, 1, 0), tgt_in, tgt_out, weights)
    return {"workdir": workdir, "examples": len(dialogues), "encoder_spread": round(spread, 4),
            "nll_own_source": round(own, 4), "nll_other_source": round(rolled, 4),
            "source_gain": round(rolled - own, 4)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdirs", required=True, help="comma-separated seq2seq workdirs")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--out", default="runs/samsum_summarisation/source_use.json")
    args = parser.parse_args(argv)
    dialogues, summaries = read_parallel("samsum", args.split, "", "")
    keep = [i for i, d in enumerate(dialogues) if d.strip()][:args.examples]
    rows = []
    for workdir in args.workdirs.split(","):
        with jax.default_matmul_precision("float32"):
            rows.append(measure(workdir, [dialogues[i] for i in keep],
                                [summaries[i] for i in keep]))
        print(json.dumps(rows[-1]), flush=True)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
