"""The conversions a mapping table is made of, shared by every family.

A rule is (Hugging Face tensor names, to_ours(list of arrays) -> array, to_hf(array) -> list
of arrays): one entry serves import and export. torch Linear weights are [out, in]; ours are
[in, out], attention projections split into heads: q/k/v [D, H, Dh] (fused as [D, 3, H, Dh])
and the output [H, Dh, D]. `read_rule`, `tree_get` and `tree_set` apply a table to a checkpoint.
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


# Conv1D (GPT-1, GPT-2) stores weights as [in, out], as we do: no transpose, only head reshapes.
def conv1d_fused(hf_weight, parts, heads):
    """A Conv1D of `parts` fused head projections (c_attn: q, k, v): [D, parts * H * Dh] <->
    ours [D, parts, H, Dh]."""
    return ([hf_weight], lambda ws: ws[0].reshape(ws[0].shape[0], parts, heads, -1),
            lambda w: [w.reshape(w.shape[0], -1)])


def fused_bias(hf_bias, parts, heads):
    """Its bias: [parts * H * Dh] <-> ours [parts, H, Dh]."""
    return ([hf_bias], lambda ws: ws[0].reshape(parts, heads, -1), lambda b: [b.reshape(-1)])


def conv1d_out(hf_weight, heads):
    """The attention output as a Conv1D: [H * Dh, D] <-> ours [H, Dh, D]."""
    return ([hf_weight], lambda ws: ws[0].reshape(heads, -1, ws[0].shape[1]),
            lambda w: [w.reshape(-1, w.shape[-1])])


def tree_get(tree, path):
    """The leaf at "a/b/c" of a nested dict."""
    for p in path.split("/"):
        tree = tree[p]
    return tree


def tree_set(tree, path, value):
    *parents, leaf = path.split("/")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def read_rule(rule, names, our_shape, tensors, source, used):
    """Our parameter (NumPy float32, `our_shape`) from the HF tensors `names` of `rule`; a
    missing tensor or one whose shape disagrees with config.json is named, with its file."""
    _, to_ours, to_hf = rule
    want = [w.shape for w in to_hf(np.zeros(our_shape, np.float32))]
    arrays = []
    for name, shape in zip(names, want):
        if name not in tensors:
            raise ValueError(f"{source}: tensor {name!r} is missing")
        array = np.asarray(tensors[name], np.float32)
        if array.shape != tuple(shape):
            raise ValueError(f"{source}: tensor {name!r} has shape {tuple(array.shape)}, but "
                             f"config.json implies {tuple(shape)}")
        used.add(name)
        arrays.append(array)
    return to_ours(arrays)
