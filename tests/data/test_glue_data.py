import re

import pytest

from llm_jax.data import MissingDataError
from llm_jax.data.glue_data import FOLDERS, LABEL_NAMES, TASKS, glue_task, read_glue
from llm_jax.data.sst2 import read_sst2
from tests.conftest import require_real_data

# (task, split, file, examples, labelled): the counts of /work/shared/data/README.md.
REAL = [
    ("cola", "train", "train.tsv", 8551, True),
    ("cola", "dev", "dev.tsv", 1043, True),
    ("cola", "test", "test.tsv", 1063, False),
    ("sst2", "train", "train.tsv", 67349, True),
    ("sst2", "dev", "dev.tsv", 872, True),
    ("sst2", "test", "test_labeled.tsv", 1821, True),
    ("mrpc", "train", "train.tsv", 3668, True),
    ("mrpc", "dev", "dev.tsv", 408, True),
    ("mrpc", "test", "test.tsv", 1725, False),
    ("stsb", "train", "train.tsv", 5749, True),
    ("stsb", "dev", "dev.tsv", 1500, True),
    ("stsb", "test", "test.tsv", 1379, False),
    ("qnli", "dev", "dev.tsv", 5463, True),
    ("qnli", "test", "test.tsv", 5463, False),
    ("rte", "train", "train.tsv", 2490, True),
    ("rte", "dev", "dev.tsv", 277, True),
    ("rte", "test", "test.tsv", 3000, False),
    ("wnli", "train", "train.tsv", 635, True),
    ("wnli", "dev", "dev.tsv", 71, True),
    ("wnli", "test", "test.tsv", 146, False),
]
PAIR_TASKS = {"mrpc", "stsb", "qnli", "rte", "wnli"}


@pytest.fixture
def glue_file(monkeypatch):
    """Skips unless the real data directory holds glue/<Task>/<file>; then points at it."""
    def need(task, file):
        root = require_real_data(f"glue/{FOLDERS[task]}/{file}")
        monkeypatch.setenv("LLM_JAX_DATA_DIR", str(root))
        return root / "glue" / FOLDERS[task] / file
    return need


def _error(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


@pytest.mark.parametrize("task,split,file,count,labelled", REAL, ids=[f"{r[0]}-{r[1]}" for r in REAL])
def test_real_split_counts_and_labels(glue_file, task, split, file, count, labelled):
    path = glue_file(task, file)
    data = read_glue(task, split)
    assert (len(data), data.path, data.task, data.split) == (count, path, task, split)
    assert (data.text_b is not None) == (task in PAIR_TASKS)
    assert len(data.text_b or data.text_a) == count and all(data.text_a)
    if not labelled:
        assert data.labels is None
    elif task == "stsb":
        assert len(data.labels) == count and min(data.labels) == 0.0 and max(data.labels) == 5.0
    else:
        assert sorted(set(data.labels)) == list(range(len(LABEL_NAMES[task])))


def test_label_orders_are_hugging_faces():
    assert LABEL_NAMES == {
        "cola": ("unacceptable", "acceptable"),
        "sst2": ("negative", "positive"),
        "mrpc": ("not_equivalent", "equivalent"),
        "stsb": None,
        "qnli": ("entailment", "not_entailment"),
        "rte": ("entailment", "not_entailment"),
        "wnli": ("not_entailment", "entailment"),
    }
    assert [glue_task(FOLDERS[t]) for t in TASKS] == list(TASKS)
    assert glue_task("STS-B") == "stsb" and glue_task("sst-2") == "sst2"


def test_real_first_examples_and_their_label_ids(glue_file):
    for task, file in [("rte", "dev.tsv"), ("wnli", "dev.tsv"), ("mrpc", "dev.tsv"), ("cola", "train.tsv"),
                       ("stsb", "dev.tsv"), ("qnli", "dev.tsv")]:
        glue_file(task, file)
    rte = read_glue("rte", "dev")
    assert rte.text_b[0] == "Christopher Reeve had an accident."
    assert rte.label_names[rte.labels[0]] == "not_entailment"
    wnli = read_glue("wnli", "dev")  # the file's "1" is entailment
    assert [wnli.label_names[i] for i in wnli.labels[:2]] == ["not_entailment", "entailment"]
    mrpc = read_glue("MRPC", "dev")  # the BOM before "Quality" is not part of the header
    assert mrpc.labels[:2] == [1, 0]
    # The second sentence opens a quote that a quoting reader would run on over lines.
    assert mrpc.text_b[0] == '" The foodservice pie business does not fit our long-term growth strategy .'
    cola = read_glue("CoLA", "train")
    assert cola.text_a[0] == "Our friends won't buy this analysis, let alone the next one we propose."
    assert cola.label_names[cola.labels[0]] == "acceptable"
    assert read_glue("STS-B", "validation").labels[:2] == [5.0, 4.75]
    qnli = read_glue("qnli", "dev")
    assert qnli.text_a[0].startswith("What came into force") and qnli.labels[0] == 0


def test_sst2_agrees_with_the_sst2_reader(glue_file):
    glue_file("sst2", "dev.tsv")
    ours, theirs = read_glue("sst2", "dev"), read_sst2("dev")
    assert [s.split() for s in ours.text_a] == theirs.sentences
    assert ours.labels == theirs.labels.tolist()


def test_qnli_train_is_reported_missing_with_the_layout(glue_file):
    root = glue_file("qnli", "dev.tsv").parents[2]
    if (root / "glue" / "QNLI" / "train.tsv").is_file():
        pytest.skip("this data directory has QNLI's train.tsv")
    with pytest.raises(MissingDataError) as e:
        read_glue("qnli", "train")
    assert str(root / "glue" / "QNLI" / "train.tsv") in str(e.value)
    assert "Expected layout: glue/QNLI/train.tsv and dev.tsv (header index<TAB>question" in str(e.value)


def test_a_users_own_files(tmp_path):
    rte = tmp_path / "rte.tsv"
    # CRLF endings, and quotes that open in one field and never close: fields split on tabs only.
    rte.write_text('index\tsentence1\tsentence2\tlabel\r\n0\t"He said\tit "rains\tentailment\r\n'
                   '1\tA b.\tC d.\tnot_entailment\r\n', encoding="utf-8", newline="")
    data = read_glue("rte", "train", path=rte)
    assert data.text_a == ['"He said', "A b."] and data.text_b == ['it "rains', "C d."]
    assert data.labels == [0, 1] and data.path == rte

    mrpc = tmp_path / "mrpc.tsv"
    mrpc.write_text("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA .\tB .\n",
                    encoding="utf-8")
    assert read_glue("mrpc", "dev", path=mrpc).labels == [1]

    cola = tmp_path / "cola.tsv"
    cola.write_text("src\t0\t*\tBad sentence here.\nsrc\t1\t\tGood one.", encoding="utf-8")  # no final \n
    data = read_glue("cola", "train", path=cola)
    assert data.text_a == ["Bad sentence here.", "Good one."]
    assert data.labels == [0, 1] and data.text_b is None

    stsb = tmp_path / "stsb.tsv"
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    stsb.write_text(f"{header}\tscore\n0\tg\tf\t2012\t1\tnone\tnone\tA.\tB.\t3.800\n", encoding="utf-8")
    assert read_glue("stsb", "train", path=stsb).labels == [3.8]
    stsb.write_text(f"{header}\n0\tg\tf\t2012\t1\tnone\tnone\tA.\tB.\n", encoding="utf-8")
    unlabelled = read_glue("stsb", "test", path=stsb)
    assert unlabelled.labels is None and unlabelled.text_b == ["B."]

    latin = tmp_path / "sst2.tsv"
    latin.write_bytes("sentence\tlabel\ncrème brûlée\t1\n".encode("latin-1"))
    assert read_glue("sst2", "train", path=latin, encoding="latin-1").text_a == ["crème brûlée"]


def test_sst2_test_falls_back_to_glues_unlabelled_file(tmp_data_dir):
    folder = tmp_data_dir / "glue" / "SST-2"
    folder.mkdir(parents=True)
    (folder / "test.tsv").write_text("index\tsentence\n0\ta fine film .\n1\tdull .\n")
    data = read_glue("sst2", "test")
    assert data.path == folder / "test.tsv" and data.labels is None and len(data) == 2
    (folder / "test_labeled.tsv").write_text("sentence\tlabel\na fine film .\t1\n")
    data = read_glue("sst2", "test")
    assert data.path == folder / "test_labeled.tsv" and data.labels == [1]


def test_missing_files_name_the_path_and_the_layout(tmp_data_dir, tmp_path):
    with pytest.raises(MissingDataError) as e:
        read_glue("rte", "dev")
    assert str(tmp_data_dir / "glue" / "RTE" / "dev.tsv") in str(e.value)
    assert "header index<TAB>sentence1<TAB>sentence2<TAB>label" in str(e.value)
    with pytest.raises(MissingDataError) as e:
        read_glue("cola", "train", path=tmp_path / "mine.tsv")
    assert f"{tmp_path / 'mine.tsv'}: no such file" in _error(e)
    assert "no header, columns source<TAB>label<TAB>original_mark<TAB>sentence" in str(e.value)


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
STSB_ROW = "0\tg\tf\ty\t1\tn\tn\ta\tb\t"  # a row up to its score
BAD_LINES = [
    # (task, split, file text, line, field, expected words in the message)
    ("rte", "train", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta b\tentailment\n",
     3, "columns", "expected 4 tab-separated columns (index, sentence1, sentence2, label), got 3"),
    ("rte", "train", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tneutral\n",
     2, "label", "expected one of 'entailment', 'not_entailment', got 'neutral'"),
    ("wnli", "dev", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n",
     2, "label", "expected one of '0', '1', got 'entailment'"),
    ("mrpc", "train", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n2\t1\t2\ta\tb\n",
     2, "Quality", "got '2'"),
    ("cola", "train", "s\t1\t\tok\ns\tyes\t\tno\n", 2, "label", "got 'yes'"),
    ("cola", "dev", "s\t1\tok\n", 1, "columns", "expected 4 tab-separated columns"),
    ("stsb", "train", STSB_HEADER + STSB_ROW + "five\n", 2, "score",
     "expected a number from 0 to 5, got 'five'"),
    ("stsb", "dev", STSB_HEADER + STSB_ROW + "4\n" + STSB_ROW + "nan\n", 3, "score", "got 'nan'"),
    ("stsb", "dev", STSB_HEADER + STSB_ROW + "5.5\n", 2, "score", "got '5.5'"),
    ("qnli", "dev", "question\tsentence\tlabel\n", 1, "header",
     "expected 'index<TAB>question<TAB>sentence<TAB>label'"),
    ("qnli", "train", "index\tquestion\tsentence\n0\tq\ts\n", 1, "header",
     "a train file needs its 'label' column"),
    ("sst2", "train", "", 1, "header", "the file is empty"),
    ("sst2", "train", "sentence\tlabel\ngood\t1\n\nbad\t0\n", 3, "columns", "got 1"),
]


@pytest.mark.parametrize("task,split,text,line,field,words", BAD_LINES,
                         ids=[f"{b[0]}-{b[4]}-{i}" for i, b in enumerate(BAD_LINES)])
def test_malformed_lines_name_file_line_and_field(tmp_path, task, split, text, line, field, words):
    path = tmp_path / f"{split}.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as e:
        read_glue(task, split, path=path)
    message = _error(e)
    assert message.startswith(f"{path}:{line}: field '{field}': ")
    assert words in message


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"sentence\tlabel\ngood\t1\ncr\xe8me\t1\n")
    with pytest.raises(ValueError) as e:
        read_glue("sst2", "train", path=path)
    assert re.match(rf"{re.escape(str(path))}:3: field 'text': byte 0xe8 is not valid utf-8", _error(e))


def test_unknown_task_and_split():
    with pytest.raises(ValueError) as e:
        read_glue("mnli", "train")
    assert "GLUE task 'mnli': expected one of cola, sst2" in _error(e)
    with pytest.raises(ValueError) as e:
        read_glue("rte", "training")
    assert "GLUE split 'training': expected one of train, dev, test" in _error(e)
