"""`python -m llm_jax.reproduce NAME ...`: the same as `python -m llm_jax reproduce NAME ...`."""

import sys

from llm_jax.reproduce import main

sys.exit(main(sys.argv[1:]))
