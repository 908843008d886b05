"""The llm_jax GPT (variant "gpt2") written in plain PyTorch, nanoGPT style, as a speed peer.

Same layers, shapes and init scheme as llm_jax/models/gpt.py: token + learned position
embeddings, pre-LN blocks with a fused qkv projection and causal attention, a 4x MLP, a final
LayerNorm and an lm_head tied to the token embedding. `load_llm_jax_params` copies an llm_jax
parameter tree into it, so a forward pass of both can be compared number for number.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d, heads, bias):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.c_proj = nn.Linear(d, d, bias=bias)

    def forward(self, x):
        B, T, D = x.shape
        # [B, T, 3D] -> three [B, H, T, Dh]; the 3D axis is ordered (q|k|v, head, dim).
        q, k, v = self.c_attn(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, d, hidden, bias, gelu_approx):
        super().__init__()
        self.c_fc = nn.Linear(d, hidden, bias=bias)
        self.c_proj = nn.Linear(hidden, d, bias=bias)
        self.approx = gelu_approx

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.approx))


class Block(nn.Module):
    def __init__(self, d, heads, hidden, bias, gelu_approx):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5, bias=bias)
        self.attn = Attention(d, heads, bias)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5, bias=bias)
        self.mlp = MLP(d, hidden, bias, gelu_approx)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Built from an llm_jax `model` ConfigDict (only variant gpt2, tied embeddings)."""

    def __init__(self, cfg):
        super().__init__()
        assert cfg.variant == "gpt2" and cfg.tie_embeddings and cfg.dropout_rate == 0.0
        approx = {"gelu": "none", "gelu_tanh": "tanh"}[cfg.activation]
        d, hidden = cfg.embed_dim, cfg.mlp_dim or 4 * cfg.embed_dim
        self.wte = nn.Embedding(cfg.vocab_size, d)
        self.wpe = nn.Embedding(cfg.max_len, d)
        self.blocks = nn.ModuleList(Block(d, cfg.num_heads, hidden, cfg.use_bias, approx)
                                    for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5, bias=cfg.use_bias)
        self.lm_head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as llm_jax's Embed.attend
        # GPT-2 init as in llm_jax: N(0, std) everywhere, std / sqrt(2L) on residual projections.
        std = cfg.init_std
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue  # LayerNorm ones/zeros and zero biases: PyTorch's defaults already
            s = std / math.sqrt(2 * cfg.num_layers) if name.endswith("c_proj.weight") else std
            nn.init.normal_(p, 0.0, s)
        for m in self.modules():
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def make_adamw(model, opt_cfg, **impl):
    """AdamW as llm_jax configures it: decay only on matrices (not biases, LayerNorm weights)."""
    params = list(model.parameters())  # the tied weight appears once
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": opt_cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=opt_cfg.lr, betas=(opt_cfg.b1, opt_cfg.b2),
                             eps=opt_cfg.eps, **impl)


def load_llm_jax_params(model, params, num_layers):
    """Copies an llm_jax GPT parameter tree (nested dict of arrays) into `model`.

    llm_jax keeps kernels as [in, out] (torch Linear is [out, in]), the fused qkv kernel as
    [D, 3, H, Dh], the output projection as [H, Dh, D], and every block parameter stacked on a
    leading layer axis.
    """
    a = lambda x: torch.from_numpy(np.array(x, dtype=np.float32))  # noqa: E731
    sd = {"wte.weight": a(params["embed"]["table"]), "wpe.weight": a(params["positions"]["table"]),
          "ln_f.weight": a(params["final_ln"]["scale"])}
    if "bias" in params["final_ln"]:
        sd["ln_f.bias"] = a(params["final_ln"]["bias"])
    blk = params["stack"]["blocks"]
    for i in range(num_layers):
        at, mlp, p = blk["attn"], blk["mlp"], f"blocks.{i}."
        D = at["qkv"].shape[1]
        sd[p + "attn.c_attn.weight"] = a(at["qkv"][i]).reshape(D, -1).T
        sd[p + "attn.c_proj.weight"] = a(at["out"][i]).reshape(-1, D).T
        sd[p + "mlp.c_fc.weight"] = a(mlp["fc"][i]).T
        sd[p + "mlp.c_proj.weight"] = a(mlp["proj"][i]).T
        for ln in ("ln1", "ln2"):
            sd[f"{p}ln_{ln[-1]}.weight"] = a(blk[ln]["scale"][i])
            if "bias" in blk[ln]:
                sd[f"{p}ln_{ln[-1]}.bias"] = a(blk[ln]["bias"][i])
        if "qkv_bias" in at:
            sd[p + "attn.c_attn.bias"] = a(at["qkv_bias"][i]).reshape(-1)
            sd[p + "attn.c_proj.bias"] = a(at["out_bias"][i])
            sd[p + "mlp.c_fc.bias"] = a(mlp["fc_bias"][i])
            sd[p + "mlp.c_proj.bias"] = a(mlp["proj_bias"][i])
    sd["lm_head.weight"] = sd["wte.weight"]
    # strict: a parameter either side has and the other lacks is an error, not a silent skip.
    model.load_state_dict({k: v.contiguous() for k, v in sd.items()}, strict=True)
    return model
