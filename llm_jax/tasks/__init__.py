from llm_jax.tasks.causal_lm import CausalLM

TASKS = {"causal_lm": CausalLM}


def build_task(config, workdir):
    """The task named by `config.task.name`."""
    name = config.task.name
    if name not in TASKS:
        raise ValueError(f"config.task.name={name!r}: expected one of {sorted(TASKS)}")
    return TASKS[name](config, workdir)
