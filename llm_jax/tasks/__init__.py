from llm_jax.tasks.bilm import BiLM
from llm_jax.tasks.causal_lm import CausalLM
from llm_jax.tasks.glue import Glue
from llm_jax.tasks.intent_slots import IntentSlots
from llm_jax.tasks.masked_lm import MaskedLM
from llm_jax.tasks.ngram_lm import NGramLMTask
from llm_jax.tasks.seq2seq import Seq2Seq
from llm_jax.tasks.span_qa import SpanQA
from llm_jax.tasks.stream_lm import StreamLM
from llm_jax.tasks.tagging import TokenTagging
from llm_jax.tasks.word2vec import Word2VecTask

# name -> task class; the class's default_config() lists every `config.task` field it reads.
TASKS = {"causal_lm": CausalLM, "stream_lm": StreamLM, "bilm": BiLM,
         "ngram_lm": NGramLMTask, "word2vec": Word2VecTask, "seq2seq": Seq2Seq,
         "masked_lm": MaskedLM, "glue": Glue, "token_tagging": TokenTagging,
         "intent_slots": IntentSlots, "span_qa": SpanQA}


def task_class(name):
    """The task class registered as `name` (config field `task.name`)."""
    if name not in TASKS:
        raise ValueError(f"config.task.name={name!r}: expected one of {sorted(TASKS)}")
    return TASKS[name]


def default_task_config(name: str):
    return task_class(name).default_config()


def build_task(config, workdir):
    """The task named by `config.task.name`."""
    return task_class(config.task.name)(config, workdir)
