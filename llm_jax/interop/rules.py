"""The conversions a mapping table is made of, shared by every family.

A rule is (Hugging Face tensor names, to_ours(list of arrays) -> array, to_hf(array) -> list
of arrays): one entry serves import and export. torch Linear weights are [out, in]; ours are
[in, out], attention projections split into heads: q/k/v [D, H, Dh] (fused as [D, 3, H, Dh])
and the output [H, Dh, D].
"""

import numpy as np

from llm_jax.interop.hf_files import join_heads, split_heads


def linear(hf):
    """A torch Linear weight, transposed."""
    return ([hf], lambda ws: ws[0].T, lambda w: [w.T])


def vector(hf):
    return ([hf], lambda ws: ws[0], lambda w: [w])


def layer_norm(ours, hf):
    return {f"{ours}/scale": vector(f"{hf}.weight"), f"{ours}/bias": vector(f"{hf}.bias")}


def fused(names, heads, suffix):
    """Several head projections (q/k/v) stacked on axis 1 (weights) or 0 (biases)."""
    hf = [f"{n}.{suffix}" for n in names]
    if suffix == "weight":
        return (hf, lambda ws: np.stack([split_heads(w, heads) for w in ws], 1),
                lambda w: [join_heads(w[:, i]) for i in range(len(names))])
    return (hf, lambda ws: np.stack([b.reshape(heads, -1) for b in ws], 0),
            lambda b: [b[i].reshape(-1) for i in range(len(names))])


def heads_in(hf_weight, heads):
    """One head projection alone (a cross-attention q): [D, H, Dh]."""
    return ([hf_weight], lambda ws: split_heads(ws[0], heads), lambda w: [join_heads(w)])


def heads_bias(hf_bias, heads):
    return ([hf_bias], lambda ws: ws[0].reshape(heads, -1), lambda b: [b.reshape(-1)])


def out_proj(hf_weight, heads):
    """The attention output: torch [D, H * Dh] -> ours [H, Dh, D]."""
    return ([hf_weight], lambda ws: ws[0].T.reshape(heads, -1, ws[0].shape[0]),
            lambda w: [w.reshape(-1, w.shape[-1]).T])
