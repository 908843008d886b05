"""Language modelling over parallel token streams with a state carried from batch to batch.

Truncated back-propagation through time as in Zaremba et al. (2014): the corpus is cut into
`batch_size` streams (data/stream_batches.py), each batch is the next `seq_len` tokens of every
stream, and the model's recurrent state at the end of one batch is where the next one starts;
gradients stop at the batch boundary. The state is zeroed where a batch says `reset` (an
epoch's first batch). The trainer keeps the carry in the train state (so it is checkpointed)
and threads it through evaluation the same way.

Carry protocol (used by training/steps.py and trainer.py, for any task that has it):
  initial_carry(model, batch_size) -> pytree of zeros
  carry_loss(model, carry, batch, dropout_key) -> (loss, (metrics, new_carry)); carry None: zeros
"""


import jax
import jax.numpy as jnp
import ml_collections

from llm_jax.data.split_reader import SplitReader
from llm_jax.data.stream_batches import StreamBatches, stream_eval_batches
from llm_jax.tasks.causal_lm import CausalLM, fit_or_load_tokenizer, lm_loss


class StreamLM:
    reports_token_nll = True
    saved_tokenizer = staticmethod(CausalLM.saved_tokenizer)
    generate_ids = staticmethod(CausalLM.generate_ids)

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict(dict(
            name="stream_lm",
            # Differentiate the NLL summed over the seq_len steps and averaged over the batch, as
            # ptb_word_lm.py does (its lr 1.0 assumes it); False: the per-token mean.
            sum_over_time=False,
            eval_batch_size=0,  # streams when evaluating; 0: train.batch_size (paper's test: 1)
            eval_seq_len=0,     # steps per eval batch; 0: data.seq_len (does not change the
                                # result beyond the unscored tail, since the state carries over)
        ))

    def __init__(self, config, workdir: str):
        self.cfg, self.data_cfg = config.task, config.data
        d = config.data
        # As in CausalLM: recorded splits, ids memory-mapped from the token cache.
        self.splits = SplitReader(d, workdir)
        self.splits.record(d.train_split, d.eval_split)
        self.tokenizer = fit_or_load_tokenizer(d, workdir, self.splits)
        self.train_tokens = self.splits.tokens(d.train_split, self.tokenizer)
        self.eval_tokens = self.split_tokens(d.eval_split)
        self.seq_len = d.seq_len

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def split_tokens(self, split: str):
        return self.splits.tokens(split, self.tokenizer)

    def train_batches(self, batch_size: int, seed: int) -> StreamBatches:
        del seed  # the stream layout is fixed, as in the paper; nothing is shuffled
        return StreamBatches(self.train_tokens, batch_size, self.seq_len)

    def eval_batches(self, batch_size: int, max_batches=None, tokens=None):
        tokens = self.eval_tokens if tokens is None else tokens
        return stream_eval_batches(tokens, self.cfg.eval_batch_size or batch_size,
                                   self.cfg.eval_seq_len or self.seq_len, max_batches)

    def initial_carry(self, model, batch_size: int):
        return model.initial_carry(batch_size)

    def carry_loss(self, model, carry, batch, dropout_key=None):
        """(loss to minimise, (metrics, new carry)); pure and jit-able."""
        inputs = batch["inputs"]
        if carry is None:
            carry = model.initial_carry(inputs.shape[0])
        if "reset" in batch:
            keep = ~batch["reset"].astype(bool)
            carry = jax.tree.map(
                lambda c: jnp.where(keep.reshape(-1, *([1] * (c.ndim - 1))), c, jnp.zeros_like(c)),
                carry)
        logits_BTV, new_carry = model(inputs, carry, dropout_key=dropout_key)
        # No accuracy metric: an argmax over [B, T, V] costs ~5% of a CPU step for a number
        # these LMs are not judged by.
        loss, metrics = lm_loss(logits_BTV, batch["targets"], batch.get("weights"), accuracy=False)
        if self.cfg.sum_over_time:
            loss = loss * inputs.shape[1]
        return loss, (metrics, jax.lax.stop_gradient(new_carry))

    def loss(self, model, batch, dropout_key=None):
        """Without a carry (each batch from a zero state): the plain task interface."""
        loss, (metrics, _) = self.carry_loss(model, None, batch, dropout_key)
        return loss, metrics
