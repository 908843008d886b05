import numpy as np
import pytest

from llm_jax.data import MissingDataError
from llm_jax.data.sst2 import read_sst2


@pytest.mark.real_data("glue/SST-2/train.tsv", "glue/SST-2/dev.tsv")
def test_reads_the_real_splits(real_data_dir):
    train, dev = read_sst2("train"), read_sst2("dev")
    assert (len(train), len(dev)) == (67349, 872)
    assert set(np.unique(dev.labels)) == {0, 1}
    assert dev.sentences[0] == ["one", "long", "string", "of", "cliches", "."]
    sub = train.subset(100, seed=1)
    assert len(sub) == 100 and sub.sentences[0] in train.sentences
    assert train.subset(None) is train


def test_missing_and_malformed_files_are_named(tmp_data_dir):
    with pytest.raises(MissingDataError, match="SST-2"):
        read_sst2("dev")
    (tmp_data_dir / "glue" / "SST-2").mkdir(parents=True)
    (tmp_data_dir / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\ngood film\t2\n")
    with pytest.raises(ValueError, match=r"dev.tsv:2"):
        read_sst2("dev")
    (tmp_data_dir / "glue" / "SST-2" / "dev.tsv").write_text("text\tlabel\n")
    with pytest.raises(ValueError, match="header"):
        read_sst2("dev")
    with pytest.raises(ValueError, match="split"):
        read_sst2("validation")
