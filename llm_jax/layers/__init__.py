from llm_jax.layers.attention import Attention
from llm_jax.layers.blocks import BlockConfig, DecoderBlock, EncoderBlock
from llm_jax.layers.char_cnn import CharCNN, Highway
from llm_jax.layers.dense import Dense
from llm_jax.layers.embeddings import Embed, LearnedPositions
from llm_jax.layers.mlp import MLP
from llm_jax.layers.norms import LayerNorm, RMSNorm
from llm_jax.layers.params import param
from llm_jax.layers.scalar_mix import ScalarMix
from llm_jax.layers.transformer import DecoderStack, EncoderStack

__all__ = ["Embed", "LearnedPositions", "MLP", "LayerNorm", "RMSNorm", "Attention", "param",
           "BlockConfig", "EncoderBlock", "DecoderBlock", "EncoderStack", "DecoderStack",
           "CharCNN", "Highway", "ScalarMix", "Dense"]
