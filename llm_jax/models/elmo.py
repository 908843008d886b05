"""ELMo's bidirectional language model (Peters et al. 2018) and its contextual vectors.

One character-level token encoder feeds a forward and a backward stack of projected LSTMs
(LSTMP) with a residual connection between layers; both directions share the token encoder
and the softmax. `layers()` returns what downstream models mix: the token layer (duplicated
to match the width of a biLSTM layer, as in ELMo) and each [forward; backward] layer.

Export/load: `export_bilm(dir, model, model_cfg, words)` writes params.npz, model.json and
vocab.json; `load_bilm(dir)` returns a `BiLM` whose `embed(sentences)` gives every layer's
vectors per token.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from llm_jax import ops
from llm_jax.data.chars import PAD, batch_char_ids
from llm_jax.layers.char_cnn import CharCNN
from llm_jax.layers.params import config_dtype, dense, normal, param, zeros
from llm_jax.layers.recurrent import LSTMCell, run_cell

PAPER_FILTERS = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256), (6, 512), (7, 1024))


def default_config() -> ml_collections.ConfigDict:
    """Every `model.*` field; defaults are the paper's 2x4096/512 biLM (options of the
    released `elmo_2x4096_512_2048cnn_2xhighway` model)."""
    return ml_collections.ConfigDict(dict(
        name="elmo", vocab_size=0,  # 0: the task's word vocabulary
        max_chars=50, char_dim=16, char_filters=PAPER_FILTERS, char_activation="relu",
        num_highway=2, proj_dim=512, hidden_dim=4096, num_layers=2,
        cell_clip=3.0, proj_clip=3.0, residual=True, dropout_rate=0.1,
        init_scale=0.0,  # 0: PyTorch default, uniform +-1/sqrt(hidden)
        dtype="float32", param_dtype="float32",
    ))


class ELMoBiLM(nnx.Module):
    """chars int32[B, T, max_chars] -> forward and backward LM logits, or the ELMo layers."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        if cfg.vocab_size < 1:
            raise ValueError(f"model.vocab_size={cfg.vocab_size}: set it, or let the task set it")
        if cfg.num_layers < 1:
            raise ValueError(f"model.num_layers={cfg.num_layers} must be >= 1")
        self.dtype = config_dtype("dtype", cfg.dtype)
        pdt = config_dtype("param_dtype", cfg.param_dtype)
        self.max_chars, self.dropout_rate, self.residual = cfg.max_chars, cfg.dropout_rate, cfg.residual
        P = cfg.proj_dim
        self.proj_dim = P
        self.token_encoder = CharCNN(
            filters=cfg.char_filters, char_dim=cfg.char_dim, num_highway=cfg.num_highway,
            out_dim=P, activation=cfg.char_activation, dtype=self.dtype, param_dtype=pdt, rngs=rngs)
        cell = dict(rngs=rngs, init_scale=cfg.init_scale or None, proj_dim=P,
                    cell_clip=cfg.cell_clip or None, proj_clip=cfg.proj_clip or None,
                    dtype=self.dtype, param_dtype=pdt)
        self.forward_cells = nnx.List([LSTMCell(P, cfg.hidden_dim, **cell)
                                       for _ in range(cfg.num_layers)])
        self.backward_cells = nnx.List([LSTMCell(P, cfg.hidden_dim, **cell)
                                        for _ in range(cfg.num_layers)])
        self.softmax_kernel = param(normal(P ** -0.5), rngs.params(), (P, cfg.vocab_size),
                                    ("embed", "vocab"), pdt)
        self.softmax_bias = param(zeros, None, (cfg.vocab_size,), ("vocab",), pdt)

    @property
    def num_output_layers(self) -> int:
        return 1 + len(self.forward_cells)

    def encode_tokens(self, chars_BTC):
        return self.token_encoder(chars_BTC)

    def contextual(self, x_BTP, mask_BT=None, *, dropout_key=None):
        """Both LSTM stacks over token vectors -> (forward layers, backward layers), each a list
        of [B, T, P]. Forward position t depends on tokens <= t only; backward on tokens >= t."""
        B = x_BTP.shape[0]
        keys = (list(jax.random.split(dropout_key, 2 * len(self.forward_cells) + 1))
                if dropout_key is not None else [None] * (2 * len(self.forward_cells) + 1))
        x_BTP = ops.dropout(x_BTP, self.dropout_rate, keys.pop())
        outs = []
        for cells, reverse in ((self.forward_cells, False), (self.backward_cells, True)):
            h, layers = x_BTP, []
            for i, cell in enumerate(cells):
                _, y = run_cell(cell, cell.initial_carry(B), h, reverse=reverse, mask_BT=mask_BT)
                y = ops.dropout(y, self.dropout_rate, keys.pop())
                h = y + h if (self.residual and i > 0) else y
                layers.append(h)
            outs.append(layers)
        return outs[0], outs[1]

    def logits(self, h_BTP):
        """The shared softmax layer: float32 [..., V]."""
        return (dense(h_BTP, self.softmax_kernel[...].astype(self.dtype))
                + self.softmax_bias[...].astype(self.dtype)).astype(jnp.float32)

    def top(self, chars_BTC, *, dropout_key=None):
        """(forward top layer, backward top layer), [B, T, P] each, for the LM losses."""
        mask_BT = chars_BTC[..., 0] != PAD
        fwd, bwd = self.contextual(self.encode_tokens(chars_BTC), mask_BT, dropout_key=dropout_key)
        return fwd[-1], bwd[-1]

    def __call__(self, chars_BTC, *, dropout_key=None):
        """(forward logits predicting token t+1, backward logits predicting token t-1)."""
        h_fwd, h_bwd = self.top(chars_BTC, dropout_key=dropout_key)
        return self.logits(h_fwd), self.logits(h_bwd)

    def layers(self, chars_BTC):
        """ELMo's layers, float32 [num_layers + 1, B, T, 2P]: [token; token], then
        [forward_j; backward_j] for each biLSTM layer j. Padding tokens are zero."""
        mask_BT = chars_BTC[..., 0] != PAD
        x = self.encode_tokens(chars_BTC)
        fwd, bwd = self.contextual(x, mask_BT)
        out = [jnp.concatenate([x, x], -1)] + [jnp.concatenate(fb, -1) for fb in zip(fwd, bwd)]
        return jnp.where(mask_BT[None, :, :, None], jnp.stack(out).astype(jnp.float32), 0.0)


# --- export / load --------------------------------------------------------------------------

def _flat(params) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): np.asarray(v) for path, v in leaves}


def export_bilm(directory, params, model_cfg, words) -> str:
    """Writes params.npz (flattened nnx state), model.json (the model config) and vocab.json
    (the softmax's words), so `load_bilm` rebuilds the model without the training run."""
    os.makedirs(directory, exist_ok=True)
    if isinstance(params, nnx.State):
        params = nnx.to_pure_dict(params)
    cfg = model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else dict(model_cfg)
    tmp = os.path.join(directory, "params.tmp.npz")
    np.savez(tmp, **_flat(jax.device_get(params)))
    os.replace(tmp, os.path.join(directory, "params.npz"))
    with open(os.path.join(directory, "model.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(directory, "vocab.json"), "w") as f:
        json.dump(list(words), f, ensure_ascii=False)
    return directory


class BiLM:
    """A loaded biLM: `embed(sentences)` -> per sentence, float32[num_layers + 1, len, 2P]."""

    def __init__(self, model: ELMoBiLM, config, words):
        self.model, self.config, self.words = model, config, list(words)
        self._graphdef, self._state = nnx.split(model)
        self._layers = jax.jit(lambda state, chars: nnx.merge(self._graphdef, state).layers(chars))

    @property
    def num_layers(self) -> int:
        return self.model.num_output_layers

    @property
    def dim(self) -> int:
        return 2 * self.model.proj_dim

    def layers_batch(self, sentences, pad_to: int = 0):
        """(layers float32[L+1, B, T, 2P], mask bool[B, T]) for a batch of token lists."""
        chars, mask = batch_char_ids(sentences, self.model.max_chars, min_len=pad_to)
        return np.asarray(self._layers(self._state, jnp.asarray(chars))), mask

    def embed(self, sentences, batch_size: int = 64):
        out = []
        for i in range(0, len(sentences), batch_size):
            chunk = [list(s) for s in sentences[i:i + batch_size]]
            # Bucketing T to a multiple of 8 bounds the number of compiled shapes.
            T = max([len(s) for s in chunk] + [1])
            layers, _ = self.layers_batch(chunk, pad_to=-(-T // 8) * 8)
            out.extend(layers[:, j, :len(s)] for j, s in enumerate(chunk))
        return out


def load_bilm(directory) -> BiLM:
    for name in ("params.npz", "model.json", "vocab.json"):
        if not os.path.exists(os.path.join(directory, name)):
            raise FileNotFoundError(f"{os.path.join(directory, name)} not found: is {directory!r} "
                                    "a directory written by `python -m llm_jax export`?")
    with open(os.path.join(directory, "model.json")) as f:
        cfg = ml_collections.ConfigDict(json.load(f))
    with open(os.path.join(directory, "vocab.json")) as f:
        words = json.load(f)
    model = nnx.eval_shape(lambda: ELMoBiLM(cfg, rngs=nnx.Rngs(0)))
    graphdef, abstract = nnx.split(model)
    pure = nnx.to_pure_dict(abstract)
    saved = np.load(os.path.join(directory, "params.npz"))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(pure)
    missing = sorted(set(jax.tree_util.keystr(p) for p, _ in leaves) - set(saved.files))
    if missing:
        raise ValueError(f"{directory}/params.npz lacks parameters {missing[:5]}")
    values = []
    for path, spec in leaves:
        v = saved[jax.tree_util.keystr(path)]
        if v.shape != spec.shape:
            raise ValueError(f"{directory}/params.npz: {jax.tree_util.keystr(path)} has shape "
                             f"{v.shape}, model.json implies {spec.shape}")
        values.append(jnp.asarray(v))
    nnx.replace_by_pure_dict(abstract, jax.tree_util.tree_unflatten(treedef, values))
    return BiLM(nnx.merge(graphdef, abstract), cfg, words)
