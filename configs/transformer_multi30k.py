"""The encoder-decoder Transformer (Vaswani et al., 2017) on Multi30k German -> English.

  small: 3 + 3 layers, d 256, 8 heads, FFN 1024 on an 8k joint BPE vocabulary (the size of
         bentrevett/pytorch-seq2seq's Transformer, 36.5 BLEU on test2016); trains on a CPU.
  base:  the paper's Table 3 base model (6 + 6, d 512, FFN 2048, 8 heads, P_drop 0.1).
  big:   the paper's big model (6 + 6, d 1024, FFN 4096, 16 heads, P_drop 0.3).
  tiny:  a seconds-long smoke run for tests (point data.corpus at a small directory).

The recipe is the paper's: Adam (0.9, 0.98, 1e-9), lr = d^-0.5 * min(step^-0.5,
step * warmup^-1.5) (the "inverse_sqrt" schedule with its peak at the end of warm-up), label
smoothing 0.1, batches of about 4,096 source + target tokens, beam 5 with alpha 0.6.
"""

from llm_jax.training.config_schema import default_config

VARIANTS = ("small", "base", "big", "tiny")


def noam_peak(d_model: int, warmup: int) -> float:
    """The paper's schedule peaks at step = warmup with d^-0.5 * warmup^-0.5."""
    return d_model ** -0.5 * warmup ** -0.5


def get_config(arg=None):
    arg = arg or "small"
    if arg not in VARIANTS:
        raise ValueError(f"configs/transformer_multi30k.py:{arg}: unknown variant; expected one "
                         f"of {VARIANTS}")
    c = default_config("transformer", "seq2seq")
    c.data.update(corpus="multi30k", tokenizer="sentencepiece", vocab_size=8000,
                  sp_model_type="bpe", train_split="train", eval_split="valid",
                  test_split="test")
    c.task.update(src_lang="de", tgt_lang="en", label_smoothing=0.1, max_tokens=4096,
                  beam_size=5, alpha=0.6)
    c.model.update(max_len=128, num_encoder_layers=6, num_decoder_layers=6, num_heads=8,
                   embed_dim=512, mlp_dim=2048, dropout_rate=0.1)
    warmup = 4000
    c.optimizer.update(name="adamw", schedule="inverse_sqrt", warmup_steps=warmup,
                       lr=noam_peak(512, warmup), b1=0.9, b2=0.98, eps=1e-9, weight_decay=0.0,
                       grad_clip=0.0)
    c.train.update(steps=100_000, batch_size=128, log_every=50, eval_every=1000,
                   eval_batches=8, checkpoint_every=1000, keep_checkpoints=5,
                   best_metric="eval/bleu", best_mode="max")
    if arg == "big":
        c.model.update(embed_dim=1024, mlp_dim=4096, num_heads=16, dropout_rate=0.3)
        c.optimizer.lr = noam_peak(1024, warmup)
        c.train.keep_checkpoints = 20  # the paper averages the last 20 of a big model
    elif arg == "small":
        c.model.update(num_encoder_layers=3, num_decoder_layers=3, embed_dim=256, mlp_dim=1024)
        # 20 epochs are about 6,000 steps: warm up over the first 1,000 (not 4,000) to a peak
        # of 1e-3, which noam_peak(256, 4000) = 9.9e-4 would reach only after two thirds
        c.optimizer.update(warmup_steps=1000, lr=1e-3)
        c.train.update(epochs=20, eval_every=500, checkpoint_every=250)  # epochs set the steps
    elif arg == "tiny":
        c.data.vocab_size = 600  # 256 byte pieces, 4 specials and merges
        c.model.update(max_len=64, num_encoder_layers=1, num_decoder_layers=2, num_heads=2,
                       embed_dim=32, mlp_dim=64, dropout_rate=0.0)
        c.task.update(max_tokens=1024, eval_decode_examples=16, beam_size=2)
        c.optimizer.update(warmup_steps=5, lr=3e-3)
        c.train.update(steps=20, batch_size=16, log_every=5, eval_every=10, eval_batches=2,
                       checkpoint_every=10, progress_bar=False)
    return c
