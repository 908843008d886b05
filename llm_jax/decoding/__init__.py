from llm_jax.decoding.beam_search import LENGTH_PENALTIES, beam_search, length_penalty, map_batch
from llm_jax.decoding.decode import (
    check_sampling_args,
    decode,
    filter_logits,
    row_keys,
    sample_token,
)

__all__ = ["LENGTH_PENALTIES", "beam_search", "check_sampling_args", "decode", "filter_logits",
           "length_penalty", "map_batch", "row_keys", "sample_token"]
