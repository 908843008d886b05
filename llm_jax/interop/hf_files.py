"""Reading and writing Hugging Face model directories, and the reshapes every family shares.

Weights are read from `model.safetensors` or a sharded `model.safetensors.index.json`;
`pytorch_model.bin` only through `torch.load(weights_only=True)` (no arbitrary unpickling),
and only where torch is installed. Written directories hold `config.json` and one
`model.safetensors`.
"""

import json
import os

import numpy as np

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"


def split_heads(w_out_in, heads):
    """torch Linear [H * Dh, D] -> ours [D, H, Dh]."""
    return w_out_in.T.reshape(w_out_in.shape[1], heads, -1)


def join_heads(w_DHK):
    """ours [D, H, Dh] -> torch Linear [H * Dh, D]."""
    return w_DHK.reshape(w_DHK.shape[0], -1).T


def read_config(hf_dir: str) -> dict:
    path = os.path.join(hf_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--from: {path} not found")
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None


def read_tensors(hf_dir: str) -> tuple[dict, str]:
    """({name: NumPy array}, the file they came from, for error messages)."""
    from safetensors.numpy import load_file

    single, index = os.path.join(hf_dir, WEIGHTS_FILE), os.path.join(hf_dir, INDEX_FILE)
    if os.path.isfile(single):
        return load_file(single), single
    if os.path.isfile(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for name in files:
            path = os.path.join(hf_dir, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{index} names {name}, which is not in {hf_dir}")
            tensors.update(load_file(path))
        return tensors, index
    torch_file = os.path.join(hf_dir, TORCH_FILE)
    if os.path.isfile(torch_file):
        try:
            import torch
        except ImportError:
            raise FileNotFoundError(
                f"{hf_dir} has only {TORCH_FILE}, which needs torch to read (pip install torch), "
                f"or convert it to {WEIGHTS_FILE} with transformers' save_pretrained") from None
        state = torch.load(torch_file, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items()}, torch_file
    raise FileNotFoundError(f"--from: {hf_dir} has no {WEIGHTS_FILE}, {INDEX_FILE} or "
                            f"{TORCH_FILE}")


def write_dir(out_dir: str, config: dict, tensors: dict) -> None:
    """config.json and model.safetensors (contiguous float32) in `out_dir`."""
    from safetensors.numpy import save_file

    os.makedirs(out_dir, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()},
              os.path.join(out_dir, WEIGHTS_FILE), metadata={"format": "pt"})
    with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2)
