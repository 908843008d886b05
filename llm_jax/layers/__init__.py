from llm_jax.layers.attention import SelfAttention
from llm_jax.layers.char_cnn import CharCNN, Highway
from llm_jax.layers.embeddings import Embed, LearnedPositions
from llm_jax.layers.mlp import MLP
from llm_jax.layers.norms import LayerNorm, RMSNorm
from llm_jax.layers.params import param
from llm_jax.layers.scalar_mix import ScalarMix
from llm_jax.layers.transformer import BlockConfig, DecoderBlock, DecoderStack, init_stack_cache

__all__ = ["Embed", "LearnedPositions", "MLP", "LayerNorm", "RMSNorm", "SelfAttention", "param",
           "BlockConfig", "DecoderBlock", "DecoderStack", "init_stack_cache", "CharCNN", "Highway",
           "ScalarMix"]
