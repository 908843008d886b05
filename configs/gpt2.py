"""GPT-2 shapes (Radford et al. 2019) on WikiText-2 with a SentencePiece BPE vocabulary.

Variants 124m, 350m, 774m, 1.5b: the four published sizes (context 1024; vocabulary padded to
50,304, a multiple of 64, as GPT-2's 50,257 usually is for speed). OpenAI's BPE cannot be
fetched here, so the tokenizer is trained on the corpus; rows beyond it are simply unused.
"""

from llm_jax.training.config_schema import default_config

SIZES = {  # layers, heads, width
    "124m": (12, 12, 768),
    "350m": (24, 16, 1024),
    "774m": (36, 20, 1280),
    "1.5b": (48, 25, 1600),
}


def get_config(arg=None):
    arg = arg or "124m"
    if arg not in SIZES:
        raise ValueError(f"configs/gpt2.py:{arg}: unknown size; expected one of {tuple(SIZES)}")
    layers, heads, width = SIZES[arg]
    c = default_config("gpt")
    c.model.update(variant="gpt2", num_layers=layers, num_heads=heads, embed_dim=width,
                   max_len=1024, vocab_size=50304, dropout_rate=0.0,
                   remat="none" if arg == "124m" else "dots")
    c.data.update(corpus="wikitext-2", tokenizer="sentencepiece", vocab_size=16000,
                  sp_model_type="bpe", seq_len=1024)
    c.optimizer.update(lr=6e-4, min_lr=6e-5, warmup_steps=700, b2=0.95, weight_decay=0.1)
    c.train.update(steps=20000, batch_size=32, eval_every=1000, eval_batches=20)
    c.mesh.update(data=-1, fsdp=1, tensor=1)
    return c
