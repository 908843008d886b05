"""The label-smoothing ablation of the paper's Table 3 (rows "epsilon_ls" 0 and 0.1) on
Multi30k: python -m llm_jax sweep --config=configs/transformer_multi30k.py:small
--sweep=experiments/multi30k_transformer/sweep.py --workdir=runs/multi30k_sweep"""


def get_sweep():
    return [{"task.label_smoothing": 0.0}, {"task.label_smoothing": 0.1}]
