"""Sequence to sequence: translation (Multi30k, WMT14 through TFDS, any pair of line-aligned
files) and summarisation (SAMSum) with the encoder-decoder Transformer.

A training batch holds about `task.max_tokens` source + target tokens, bucketed by length
(data/parallel_batches.py); `config.train.batch_size` is the number of sentences per batch
when scoring or decoding. The loss is label-smoothed cross-entropy over real target tokens;
the metrics add corpus BLEU (sacrebleu) or ROUGE (rouge-score) of decoded text against the
raw reference lines: greedy on the first `eval_decode_examples` examples at periodic
evaluations, beam search over the whole split at the final one and in `eval`.
"""

import dataclasses
import os
import sys

import ml_collections
import numpy as np

from llm_jax.data import data_record
from llm_jax.data.parallel_batches import TokenBatches
from llm_jax.data.parallel_batches import eval_batches as parallel_eval_batches
from llm_jax.data.parallel_text import parallel_files, read_parallel, read_tfds_parallel
from llm_jax.data.text_files import TextSlice
from llm_jax.data.tokenizers import SentencePieceTokenizer, load_tokenizer
from llm_jax.evaluation.text_metrics import bleu, rouge
from llm_jax.tasks.causal_lm import TOKENIZER_DIR, WorkdirTokenizer, lm_loss
from llm_jax.tasks.seq2seq_decoding import best_outputs, translate_array

METRICS = ("bleu", "rouge", "")
# SentencePiece ids of the joint vocabulary this task fits
SPECIAL = dict(pad_id=0, unk_id=1, bos_id=2, eos_id=3)


@dataclasses.dataclass
class Split:
    """A split's text and ids; what `split_tokens` returns and `eval_batches` reads."""
    name: str
    src_text: list
    tgt_text: list
    src_ids: list
    tgt_ids: list


class Seq2Seq(WorkdirTokenizer):
    reports_token_nll = True

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="seq2seq", src_lang="de", tgt_lang="en",  # file suffixes / TFDS features
            label_smoothing=0.1,
            max_tokens=4096,       # source + target tokens (padding counted) per training batch
            batch_multiple=8,      # rows per batch are a multiple of this (the device mesh)
            length_multiple=8,     # padded lengths are multiples of this (few jit shapes)
            length_buckets=(),     # e.g. (32, 64, 128, 256): src and tgt padded apart to these
            metric="bleu",         # "bleu" | "rouge" | "": what decoded text is scored with
            eval_decode_examples=256,  # greedy-decoded at each periodic eval; 0: none
            beam_size=5, alpha=0.6, length_penalty="gnmt",  # final eval, `eval`, `translate`
            decode_extra_len=50,   # decode up to source length + this many tokens
            max_out_len=0,         # > 0: at most this many output tokens (summaries)
            min_len=0,             # no EOS before this many tokens (decoder start counted)
            hf_rules=False, force_eos=False,  # Hugging Face's beam rules (imported Marian)
            banned_ids=(),         # ids never generated (Marian's bad_words_ids: its pad)
            no_repeat_ngram_size=0,  # n > 0: no n-gram twice in an output (summaries use 3)
            pad_id=-1, bos_id=-1, eos_id=-1,  # -1: the tokenizer's; bos is the decoder start
        ))

    def __init__(self, config, workdir: str):
        self.cfg, self.data_cfg, self.workdir = config.task, config.data, workdir
        if self.cfg.metric not in METRICS:
            raise ValueError(f"config.task.metric={self.cfg.metric!r}: expected one of {METRICS}")
        self.max_len = int(config.model.max_len)
        self.batch_size = int(config.train.batch_size)
        self._splits: dict[str, Split] = {}
        self.signatures: dict[str, str] = {}
        self.tokenizer = self._fit_or_load_tokenizer()
        self.ids = special_ids(self.tokenizer, self.cfg)
        self.train = self.split_tokens(self.data_cfg.train_split)
        self.valid = self.split_tokens(self.data_cfg.eval_split)

    # -- data --------------------------------------------------------------------------

    def _text(self, split: str):
        d, c = self.data_cfg, self.cfg
        if d.source == "tfds":
            return read_tfds_parallel(d.tfds_name, split, c.src_lang, c.tgt_lang)
        if d.source != "files":
            raise ValueError(f"config.data.source={d.source!r}: expected 'files' or 'tfds'")
        src_path, tgt_path = parallel_files(d.corpus, split, c.src_lang, c.tgt_lang)
        if self.workdir is not None:  # traced in WORKDIR/data_files.json, checked on re-reads
            for side, path in (("src", src_path), ("tgt", tgt_path)):
                data_record.record_split(self.workdir, f"{split}.{side}",
                                         TextSlice(path, d.encoding))
        return read_parallel(d.corpus, split, c.src_lang, c.tgt_lang, encoding=d.encoding)

    def _fit_or_load_tokenizer(self):
        tok_dir = os.path.join(self.workdir, TOKENIZER_DIR)
        if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
            return load_tokenizer(tok_dir)
        d = self.data_cfg
        if d.tokenizer != "sentencepiece":
            raise ValueError(f"config.data.tokenizer={d.tokenizer!r}: the seq2seq task fits a "
                             "joint 'sentencepiece' vocabulary on both sides")
        src, tgt = self._text(d.train_split)
        tokenizer = SentencePieceTokenizer.fit("\n".join(src + tgt), d.vocab_size,
                                               model_type=d.sp_model_type, **SPECIAL)
        tokenizer.save(tok_dir)
        return tokenizer

    def _encode(self, lines, side="src"):
        # an imported Marian tokenizer has a target-side SentencePiece model of its own
        if side == "tgt" and hasattr(self.tokenizer, "encode_target_lines"):
            return self.tokenizer.encode_target_lines(lines)
        return self.tokenizer.encode_lines(lines)

    def split_tokens(self, split: str) -> Split:
        if split not in self._splits:
            src, tgt = self._text(split)
            self._splits[split] = Split(split, src, tgt, self._encode(src), self._encode(tgt, "tgt"))
        return self._splits[split]

    def train_batches(self, batch_size: int, seed: int) -> TokenBatches:
        c = self.cfg
        return TokenBatches(self.train.src_ids, self.train.tgt_ids, max_tokens=c.max_tokens,
                            seed=seed, pad_id=self.ids["pad"], bos_id=self.ids["bos"],
                            eos_id=self.ids["eos"], max_len=self.max_len,
                            length_multiple=c.length_multiple, batch_multiple=c.batch_multiple,
                            length_buckets=c.length_buckets)

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None):
        split = self.valid if tokens is None else tokens
        batches = parallel_eval_batches(
            split.src_ids, split.tgt_ids, batch_size=batch_size, pad_id=self.ids["pad"],
            bos_id=self.ids["bos"], eos_id=self.ids["eos"], max_len=self.max_len,
            length_multiple=self.cfg.length_multiple, length_buckets=self.cfg.length_buckets)
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                return
            yield {k: v for k, v in batch.items() if k != "index"}

    def loss(self, model, batch, dropout_key=None):
        logits_BTV = model(batch["src"], batch["src_mask"], batch["tgt_in"],
                           dropout_key=dropout_key)
        return lm_loss(logits_BTV, batch["tgt_out"], batch["tgt_weights"],
                       label_smoothing=self.cfg.label_smoothing)

    # -- decoding ----------------------------------------------------------------------

    def decode_metrics(self, model, tokens=None, *, final: bool) -> dict:
        """BLEU or ROUGE of decoded text: greedy on a prefix of the split at periodic evals,
        beam search over all of it at the final one."""
        c, split = self.cfg, self.valid if tokens is None else tokens
        if not c.metric or (not final and c.eval_decode_examples <= 0):
            return {}
        n = len(split.src_text) if final else min(c.eval_decode_examples, len(split.src_text))
        hyps = self.decode_lines(model, split.src_text[:n], ids=split.src_ids[:n],
                                 beam_size=c.beam_size if final else 1, warn=final)
        refs = split.tgt_text[:n]
        scores = bleu(hyps, refs) if c.metric == "bleu" else rouge(hyps, refs)
        # sacrebleu's signatures say how BLEU was computed; `eval` prints them
        self.signatures = {k: v for k, v in scores.items() if isinstance(v, str)}
        return {k: v for k, v in scores.items() if not isinstance(v, str)}

    def decode_lines(self, model, lines, *, ids=None, beam_size=None, alpha=None,
                     warn=True) -> list[str]:
        return decode_text(model, self.tokenizer, self.cfg, lines, ids=ids, max_len=self.max_len,
                           batch_size=self.batch_size, beam_size=beam_size, alpha=alpha,
                           warn=warn)


def special_ids(tokenizer, task_cfg) -> dict:
    """{"pad", "bos", "eos"}: config.task's where set (>= 0), else the tokenizer's."""
    own = getattr(tokenizer, "special_ids", {})
    ids = {}
    for name in ("pad", "bos", "eos"):
        value = task_cfg[f"{name}_id"]
        ids[name] = int(value if value >= 0 else own.get(name, -1))
        if ids[name] < 0:
            raise ValueError(f"the tokenizer has no {name} id: set config.task.{name}_id")
    return ids


def decode_text(model, tokenizer, task_cfg, lines, *, max_len: int, batch_size: int = 128,
                ids=None, beam_size=None, alpha=None, out_len=None, warn=True,
                no_repeat_ngram=None, min_len=None) -> list[str]:
    """Decoded text for each input line, in input order (translate, summarise).

    Lines are sorted by length and decoded in batches of about `batch_size` hypotheses. An
    empty line gives an empty line without decoding; a line longer than `max_len` (the
    model's positions) is truncated, with a warning on stderr unless `warn` is False.
    Outputs have at most `out_len` tokens (default: source length + task.decode_extra_len).
    beam_size, alpha, min_len and no_repeat_ngram default to the config's
    (task.no_repeat_ngram_size for the last).
    """
    c = task_cfg
    beam_size = c.beam_size if beam_size is None else int(beam_size)
    alpha = c.alpha if alpha is None else float(alpha)
    no_repeat = c.get("no_repeat_ngram_size", 0) if no_repeat_ngram is None else no_repeat_ngram
    if int(no_repeat) < 0:
        raise ValueError(f"no_repeat_ngram_size={no_repeat}: must be >= 0 (0: off)")
    min_len = c.min_len if min_len is None else int(min_len)
    special = special_ids(tokenizer, c)
    ids = tokenizer.encode_lines(lines) if ids is None else ids
    pad, bos, eos = special["pad"], special["bos"], special["eos"]
    out = [""] * len(lines)
    todo = [i for i, line in enumerate(lines) if line.strip()]
    long = [i for i in todo if len(ids[i]) + 1 > max_len]
    if long and warn:
        print(f"warning: {len(long)} input line(s) longer than model.max_len={max_len} tokens "
              f"were truncated (first: line {long[0] + 1})", file=sys.stderr)
    todo.sort(key=lambda i: len(ids[i]))
    rows = -(-max(batch_size // max(beam_size, 1), 1) // 8) * 8  # a few fixed shapes for jit
    for start in range(0, len(todo), rows):
        chunk = todo[start:start + rows]
        seqs = [list(ids[i][:max_len - 1]) + [eos] for i in chunk]
        S = min(-(-max(len(s) for s in seqs) // c.length_multiple) * c.length_multiple, max_len)
        src = np.full((rows, S), pad, np.int32)
        mask = np.zeros((rows, S), bool)
        for r, s in enumerate(seqs):
            src[r, :len(s)], mask[r, :len(s)] = s, True
        mask[len(seqs):, 0] = True  # filler rows see one token, so no softmax is over nothing
        sequences, _, lengths = translate_array(
            model, src, mask, bos_id=bos, eos_id=eos, pad_id=pad,
            max_len=min(max_len, 1 + (out_len or c.get("max_out_len", 0)
                                      or S + c.decode_extra_len)),
            beam_size=beam_size, alpha=alpha,
            length_penalty=c.length_penalty, hf_rules=c.hf_rules, force_eos=c.force_eos,
            min_len=min_len, banned_ids=tuple(c.get("banned_ids", ())),
            no_repeat_ngram=int(no_repeat))
        for i, hyp in zip(chunk, best_outputs(sequences, lengths, eos)):
            out[i] = tokenizer.decode(np.asarray(hyp, np.int32))
    return out
