"""Log-likelihoods of text under a causal LM: the core of zero- and few-shot evaluation.

`model` is any causal LM with `model(tokens_BT) -> logits_BTV` (float32) and a `max_len`
attribute (models/gpt.py's GPT); `tokenizer` has `encode(str) -> ids`.

Definitions (lm-evaluation-harness v0.4, `lm_eval/api/model.py` and `lm_eval/models/huggingface.py`):

- `encode_pair(context, continuation)`: whitespace at the end of the context moves to the
  front of the continuation; then the continuation's tokens are those of
  encode(context + continuation) after the first len(encode(context)) tokens, so a BPE merge
  across the boundary is scored as the whole string would be tokenised. (lm-eval v0.3 encoded
  the two strings separately; with GPT-2's BPE the two rules agree whenever the continuation
  starts a new pre-token, e.g. with the space every task here puts first.) An empty context is
  the prefix token (`<|endoftext|>`), and the continuation is then encoded alone.
- `loglikelihood`: sum over the continuation's tokens of log softmax(logits) at that token, and
  `greedy` = every continuation token is the argmax at its position. When context +
  continuation exceed the model's window, the input is the last max_len + 1 tokens less the last
  one (`(ctx + cont)[-(max_len + 1):][:-1]`): the context is cut from the left, the continuation
  is always whole (longer than max_len is an error).
- `stride_nll`: perplexity of a long text with overlapping windows, the scheme of Hugging Face's
  guide "Perplexity of fixed-length models": the model reads windows of max_len tokens that
  begin every `stride` tokens, and each window scores only the tokens no earlier window
  predicted, so every token is predicted once, from at least max_len - stride + 1 tokens of
  context (stride = max_len: disjoint windows, lm-eval's loglikelihood_rolling). Two
  differences from the guide's loop: a window of max_len inputs also scores the token after
  its last input (the guide drops that logit, so with stride = max_len it never scores the
  first token of each window), and the text is prefixed with `<|endoftext|>` (as lm-eval
  does), so its first token is scored too.

Batches are sorted by length (longest first), padded on the right to a power-of-two bucket
(at most max_len) and to a full batch, so one jitted forward is compiled per bucket; padding
comes after every real token, which a causal model never attends to.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

MIN_BUCKET = 8


@dataclasses.dataclass(frozen=True)
class Scored:
    """One continuation's scores: per-token log-probabilities and argmax hits, in order."""
    token_logprobs: np.ndarray  # float64[n]
    token_greedy: np.ndarray  # bool[n]

    @property
    def logprob(self) -> float:
        return float(self.token_logprobs.sum())

    @property
    def greedy(self) -> bool:
        return bool(self.token_greedy.all())

    @property
    def num_tokens(self) -> int:
        return int(self.token_logprobs.size)


def prefix_id(tokenizer) -> int | None:
    """The token an empty context stands for (GPT-2's `<|endoftext|>`), or None."""
    eos = getattr(tokenizer, "eos_id", None)
    if eos is None:
        eos = (getattr(tokenizer, "special_ids", None) or {}).get("eos")
    return None if eos is None else int(eos)


def _ids(tokenizer, text: str) -> list[int]:
    return [int(i) for i in tokenizer.encode(text)]


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) by lm-eval's rule (module docstring)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    ctx = _ids(tokenizer, context) if context else []
    if not ctx:
        prefix = prefix_id(tokenizer)
        if prefix is None:
            raise ValueError("an empty context needs a prefix token, and this tokenizer has no "
                             "end-of-text token: give every example a context")
        return [prefix], _ids(tokenizer, continuation)
    return ctx, _ids(tokenizer, context + continuation)[len(ctx):]


def _bucket(length: int, max_len: int) -> int:
    return min(max_len, max(MIN_BUCKET, 1 << (length - 1).bit_length()))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _token_scores(graphdef, params, inputs_BT, targets_BT):
    logits_BTV = nnx.merge(graphdef, params)(inputs_BT).astype(jnp.float32)
    # log_softmax at the target alone: no [B, T, V] array of log-probabilities is kept
    target_BT = jnp.take_along_axis(logits_BTV, targets_BT[..., None], axis=-1)[..., 0]
    logp_BT = target_BT - jax.nn.logsumexp(logits_BTV, axis=-1)
    return logp_BT, jnp.argmax(logits_BTV, axis=-1) == targets_BT


def _model_fn(model) -> Callable:
    """(inputs_BT, targets_BT) -> (log p of each target, whether it is the argmax), jitted."""
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)
    return lambda inputs, targets: jax.device_get(_token_scores(graphdef, params, inputs, targets))


def loglikelihood_tokens(model, requests: Sequence[tuple[Sequence[int], Sequence[int]]], *,
                         batch_size: int = 16, progress: bool = False,
                         desc: str = "loglikelihood") -> list[Scored]:
    """Scores of each (context ids, continuation ids) pair, in the order given."""
    max_len = int(model.max_len)
    rows = []  # (input ids, target ids, how many of the last targets are the continuation)
    for i, (ctx, cont) in enumerate(requests):
        ctx, cont = [int(t) for t in ctx], [int(t) for t in cont]
        if not ctx or not cont:
            raise ValueError(f"request {i}: the context and the continuation need at least one "
                             f"token each (got {len(ctx)} and {len(cont)})")
        if len(cont) > max_len:
            raise ValueError(f"request {i}: the continuation has {len(cont)} tokens, more than "
                             f"the model's window (model.max_len={max_len})")
        window = (ctx + cont)[-(max_len + 1):]
        rows.append((window[:-1], window[1:], len(cont)))
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    scores = _model_fn(model) if rows else None
    out: list[Scored | None] = [None] * len(rows)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress, dynamic_ncols=True):
        T = _bucket(len(rows[batch[0]][0]), max_len)
        # Full batches only (dummy rows of zeros), so each bucket compiles once.
        inputs = np.zeros((batch_size, T), np.int32)
        targets = np.zeros((batch_size, T), np.int32)
        for r, i in enumerate(batch):
            inp, tgt, _ = rows[i]
            inputs[r, :len(inp)], targets[r, :len(tgt)] = inp, tgt
        logp, hit = scores(inputs, targets)
        for r, i in enumerate(batch):
            n, k = len(rows[i][0]), rows[i][2]
            out[i] = Scored(logp[r, n - k:n].astype(np.float64), hit[r, n - k:n].astype(bool))
    return out


def loglikelihood(model, tokenizer, pairs: Sequence[tuple[str, str]], *, batch_size: int = 16,
                  progress: bool = False) -> list[Scored]:
    """Scores of each (context, continuation) string pair: lm-eval's `loglikelihood`."""
    requests = [encode_pair(tokenizer, c, x) for c, x in pairs]
    return loglikelihood_tokens(model, requests, batch_size=batch_size, progress=progress)


def stride_windows(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, first, end) of each window over a sequence of n tokens: the model reads
    seq[begin:end - 1] (at most `window` tokens) and scores targets first..end-1, target t from
    seq[begin:t]. Windows begin every `stride` tokens; token 0 has no context and is never
    scored, every other token exactly once."""
    if not 1 <= stride <= window:
        raise ValueError(f"stride={stride} must be between 1 and the window ({window})")
    out, scored_to, begin = [], 1, 0
    while scored_to < n:
        end = min(begin + window + 1, n)
        if end > scored_to:
            out.append((begin, scored_to, end))
            scored_to = end
        begin += stride
    return out


def stride_nll(model, ids: Sequence[int], *, stride: int, window: int | None = None,
               prefix: int | None = None, batch_size: int = 16,
               progress: bool = False) -> tuple[float, int]:
    """(summed negative log-likelihood, number of tokens scored) of one long token sequence,
    with windows of `window` inputs (default model.max_len) every `stride` tokens. `prefix`
    (e.g. `<|endoftext|>`) goes first, so every token of `ids` is scored."""
    window = int(window or model.max_len)
    if window > model.max_len:
        raise ValueError(f"window={window} exceeds model.max_len={model.max_len}")
    seq = ([] if prefix is None else [int(prefix)]) + [int(i) for i in ids]
    # Each window is a request: its new targets are the continuation, the rest its context.
    requests = [(seq[b:lo], seq[lo:e]) for b, lo, e in stride_windows(len(seq), window, stride)]
    scored = loglikelihood_tokens(model, requests, batch_size=batch_size, progress=progress,
                                  desc="perplexity")
    return -sum(s.logprob for s in scored), sum(s.num_tokens for s in scored)
