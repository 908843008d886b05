"""GPT-2 shapes (Radford et al. 2019) on WikiText-2.

Variants 124m, 350m, 774m, 1.5b: the four published sizes (context 1024; vocabulary padded to
50,304, a multiple of 64, as GPT-2's 50,257 usually is for speed). By default the tokenizer is
a SentencePiece BPE trained on the corpus (rows beyond it are simply unused); add ",gpt2_bpe"
(configs/gpt2.py:124m,gpt2_bpe, or --config.data.tokenizer=gpt2_bpe) for OpenAI's own byte-level
BPE, read from LLM_JAX_DATA_DIR/tokenizers/gpt2 (encoder.json, vocab.bpe): its 50,257 tokens,
<|endoftext|> = 50256, fill all but the last 47 rows. Activations are bfloat16, parameters
and optimizer state float32 (model.dtype, model.param_dtype).

Variant cpu (configs/gpt2.py:cpu,gpt2_bpe): not a published size but GPT-2's recipe at a shape
this 2-core CPU trains in minutes (4 layers, 4 heads, 128 wide, context 256, float32), for
experiments/gpt2_zeroshot/'s "same harness on a GPT trained here" rows.
"""

from llm_jax.training.config_schema import default_config

SIZES = {  # layers, heads, width
    "124m": (12, 12, 768),
    "350m": (24, 16, 1024),
    "774m": (36, 20, 1280),
    "1.5b": (48, 25, 1600),
    "cpu": (4, 4, 128),
}


VOCABULARIES = ("", "gpt2_bpe")  # "": SentencePiece fitted on the corpus


def get_config(arg=None):
    arg = arg or "124m"
    size, _, vocabulary = arg.partition(",")
    if size not in SIZES:
        raise ValueError(f"configs/gpt2.py:{arg}: unknown size; expected one of {tuple(SIZES)}")
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"configs/gpt2.py:{arg}: unknown vocabulary {vocabulary!r}; expected "
                         "SIZE or SIZE,gpt2_bpe")
    layers, heads, width = SIZES[size]
    c = default_config("gpt")
    c.model.update(variant="gpt2", num_layers=layers, num_heads=heads, embed_dim=width,
                   max_len=1024, vocab_size=50304, dropout_rate=0.0,
                   remat="none" if size == "124m" else "dots",
                   # GPU-sized: bfloat16 activations, float32 parameters and Adam moments
                   # (--config.model.dtype=float32 on a CPU, where bfloat16 is the slower)
                   dtype="bfloat16", param_dtype="float32")
    c.data.update(corpus="wikitext-2", tokenizer="sentencepiece", vocab_size=16000,
                  sp_model_type="bpe", seq_len=1024)
    if vocabulary:
        c.data.tokenizer = vocabulary
    c.optimizer.update(lr=6e-4, min_lr=6e-5, warmup_steps=700, b2=0.95, weight_decay=0.1)
    c.train.update(steps=20000, batch_size=32, eval_every=1000, eval_batches=20)
    c.mesh.update(data=-1, fsdp=1, tensor=1)
    if size == "cpu":
        c.model.update(max_len=256, dtype="float32", scan_layers=False)
        c.data.seq_len = 256
        c.optimizer.update(lr=1e-3, min_lr=1e-4, warmup_steps=100)
        c.train.update(steps=600, batch_size=16, eval_every=200, eval_batches=20)
    return c
