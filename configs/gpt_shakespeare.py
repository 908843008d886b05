"""Character-level GPT on Tiny Shakespeare: nanoGPT's two published settings.

  cpu: 4 layers, 4 heads, 128 wide, block 64, batch 12, 2,000 steps   (val loss ~1.88)
  gpu: 6 layers, 6 heads, 384 wide, block 256, batch 64, dropout 0.2,
       lr 1e-3 cosine to 1e-4, warm-up 100, 5,000 steps, bfloat16
       activations with float32 parameters                            (val loss ~1.47)
  tiny: a seconds-long smoke run for tests and first contact.
"""

from llm_jax.training.config_schema import default_config

VARIANTS = ("cpu", "gpu", "tiny")


def get_config(arg=None):
    arg = arg or "gpu"
    if arg not in VARIANTS:
        raise ValueError(f"configs/gpt_shakespeare.py:{arg}: unknown variant; expected one of "
                         f"{VARIANTS}")
    c = default_config("gpt")
    c.data.corpus, c.data.tokenizer = "tinyshakespeare", "char"
    # nanoGPT's train_shakespeare_char.py (which keeps train.py's bias=False, and whose GPT
    # uses exact GELU rather than GPT-2's tanh approximation).
    c.model.update(variant="gpt2", num_layers=6, num_heads=6, embed_dim=384, max_len=256,
                   dropout_rate=0.2, use_bias=False, activation="gelu",
                   # bfloat16 activations, float32 parameters and Adam moments, as nanoGPT's
                   # bfloat16 autocast on a GPU; tests/training/test_mixed_precision.py.
                   dtype="bfloat16", param_dtype="float32")
    c.data.seq_len = 256
    c.optimizer.update(lr=1e-3, min_lr=1e-4, warmup_steps=100, b2=0.99, weight_decay=0.1,
                       grad_clip=1.0)
    c.train.update(steps=5000, batch_size=64, eval_every=250, eval_batches=200,
                   checkpoint_every=500)
    if arg == "cpu":
        c.model.update(num_layers=4, num_heads=4, embed_dim=128, max_len=64, dropout_rate=0.0,
                       scan_layers=False,  # a Python loop over 4 layers: faster here, compiles fast
                       dtype="float32")  # bfloat16 is slower than float32 on XLA:CPU
        c.data.seq_len = 64
        c.train.update(steps=2000, batch_size=12, eval_batches=20)
    elif arg == "tiny":
        c.model.update(num_layers=2, num_heads=2, embed_dim=32, max_len=32, dropout_rate=0.0,
                       dtype="float32")
        c.data.seq_len = 32
        c.train.update(steps=40, batch_size=8, eval_every=20, eval_batches=4,
                       checkpoint_every=20, log_every=5)
        c.optimizer.warmup_steps = 5
    return c
