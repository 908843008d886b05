from llm_jax.decoding.sampling import filter_logits, generate, sample_token

__all__ = ["filter_logits", "generate", "sample_token"]
