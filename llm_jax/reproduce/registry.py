"""Finding studies: every experiments/*/study.py defines STUDY (a Study) or STUDIES (several).

One folder may hold several studies (ptb_baselines has the n-grams and the LSTM), so the file
is per experiment and the name is per study. Study files import only the format, not JAX, so
`reproduce --list` costs no more than reading them.
"""

import importlib.util
import os
import pathlib

from llm_jax.reproduce.study import Study, validate

REPO = pathlib.Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def _load_file(path: pathlib.Path) -> list[Study]:
    name = "llm_jax_study_" + path.parent.name
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  a broken study file: name it, whatever went wrong
        raise ValueError(f"{path}: could not be loaded ({type(e).__name__}: {e})") from e
    studies = getattr(module, "STUDIES", None)
    if studies is None and hasattr(module, "STUDY"):
        studies = [module.STUDY]
    if not studies or not all(isinstance(s, Study) for s in studies):
        raise ValueError(f"{path}: defines neither STUDY (a llm_jax.reproduce.Study) nor STUDIES "
                         "(a list of them)")
    out = []
    for s in studies:
        s = s.with_path(display_path(path))
        validate(s)
        out.append(s)
    return out


def load_studies(experiments_dir=None) -> dict[str, Study]:
    """name -> Study, over every study.py under `experiments_dir` (default: the repo's)."""
    root = pathlib.Path(experiments_dir or EXPERIMENTS)
    studies = {}
    for path in sorted(root.glob("*/study.py")):
        for s in _load_file(path):
            if s.name in studies:
                raise ValueError(f"{s.path} and {studies[s.name].path} both declare a study named "
                                 f"{s.name!r}")
            studies[s.name] = s
    return studies


def display_path(path) -> str:
    """`path` relative to the repository root when it is inside it (commands are run from
    there), else absolute."""
    path = os.path.abspath(path)
    try:
        rel = os.path.relpath(path, REPO)
    except ValueError:  # another drive
        return path
    return path if rel.startswith("..") else rel


def repo_path(path) -> str:
    """A path a study gives relative to the repository root, as an absolute path."""
    return str(path) if os.path.isabs(path) else str(REPO / path)
