from llm_jax.models import bert, elmo, finetune, gpt, ngram, rnn_lm, seq2seq, word2vec

# name -> (module class, default_config() listing every field it reads)
MODELS = {"gpt": (gpt.GPT, gpt.default_config),
          "rnn_lm": (rnn_lm.RNNLM, rnn_lm.default_config),
          "elmo": (elmo.ELMoBiLM, elmo.default_config),
          "ngram": (ngram.NGramLM, ngram.default_config),
          "word2vec": (word2vec.Word2Vec, word2vec.default_config),
          "transformer": (seq2seq.Transformer, seq2seq.default_config),
          "bert": (bert.Bert, bert.default_config),
          "finetune": (finetune.FineTuned, finetune.default_config)}


def build_model(cfg, *, rngs):
    """The model named by `cfg.name` (config field `model.name`)."""
    if cfg.name not in MODELS:
        raise ValueError(f"model.name={cfg.name!r}: expected one of {sorted(MODELS)}")
    return MODELS[cfg.name][0](cfg, rngs=rngs)


def default_model_config(name: str):
    if name not in MODELS:
        raise ValueError(f"model.name={name!r}: expected one of {sorted(MODELS)}")
    return MODELS[name][1]()
