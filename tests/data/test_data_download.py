"""Downloads served by a local fake opener: tests never touch the network."""

import ast
import hashlib
import importlib
import io
import zipfile

import pytest

from llm_jax.data import CORPORA, SOURCES, ChecksumError, RemoteFile, download, sha256_file
from tests.conftest import REPO, dataset_files

# `llm_jax.data.download` the attribute is the function; the module is fetched by name.
download_module = importlib.import_module("llm_jax.data.download")

URL = "https://example.invalid/corpus/a.txt"
ZIP_URL = "https://example.invalid/corpus.zip"
A, B = b"alpha\n" * 100, b"beta\n" * 50


class FakeOpener:
    """Serves fixed bytes per URL and records which URLs were opened."""

    def __init__(self, payloads):
        self.payloads, self.opened = payloads, []

    def __call__(self, url):
        self.opened.append(url)
        if url not in self.payloads:
            raise OSError(f"offline: {url}")
        return io.BytesIO(self.payloads[url])


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def fake_sources(monkeypatch):
    sha = lambda b: hashlib.sha256(b).hexdigest()
    monkeypatch.setitem(
        SOURCES,
        "fake",
        {
            "a.txt": RemoteFile((URL,), sha(A)),
            "b.txt": RemoteFile(("https://example.invalid/dead.zip", ZIP_URL), sha(B), "d/b.txt"),
        },
    )


def test_download_verifies_and_skips_existing(tmp_data_dir, fake_sources):
    opener = FakeOpener({URL: A, ZIP_URL: _zip({"d/b.txt": B, "d/other": b"x"})})
    paths = download("fake", opener=opener)
    assert [p.read_bytes() for p in paths] == [A, B]
    assert paths[0].parent == tmp_data_dir / "fake"
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["a.txt", "b.txt"]  # no temps
    assert "https://example.invalid/dead.zip" in opener.opened  # a dead mirror falls through
    opener.opened.clear()
    assert download("fake", opener=opener) == paths
    assert opener.opened == []  # already there with the right hash


def test_bad_checksum_leaves_no_file(tmp_path, fake_sources):
    opener = FakeOpener({URL: b"tampered", ZIP_URL: _zip({"d/b.txt": B})})
    with pytest.raises(ChecksumError) as info:
        download("fake", tmp_path, opener=opener)
    message = str(info.value)
    expected = SOURCES["fake"]["a.txt"].sha256
    assert URL in message and expected in message
    assert hashlib.sha256(b"tampered").hexdigest() in message
    assert not (tmp_path / "fake" / "a.txt").exists()
    assert not [p for p in (tmp_path / "fake").iterdir() if p.name.startswith(".")]


def test_bad_file_on_disk_is_replaced(tmp_path, fake_sources):
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "a.txt").write_bytes(b"stale")
    opener = FakeOpener({URL: A, ZIP_URL: _zip({"d/b.txt": B})})
    download("fake", tmp_path, opener=opener)
    assert (tmp_path / "fake" / "a.txt").read_bytes() == A


def test_unknown_dataset():
    with pytest.raises(ValueError, match="ptb"):
        download("nope", opener=FakeOpener({}))


def test_registry_matches_corpora():
    """Every built-in corpus is downloaded with exactly its files, or described for the user."""
    for name, corpus in CORPORA.items():
        if name in download_module.NOT_DOWNLOADED:
            assert name not in SOURCES
        else:
            assert set(SOURCES[name]) == set(corpus.filenames)


def _require_file_literals():
    """The data set names given as literals to require_file(...) anywhere in llm_jax/."""
    names = set()
    for path in (REPO / "llm_jax").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", ""))
                    == "require_file" and node.args and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return names


def test_every_data_set_read_is_downloaded_or_described():
    """A missing file's message either gives the download command or says where to get it."""
    from llm_jax.data import glue_data, squad_data, tagging_data

    fine_tuning = ({f"glue/{f}" for f in glue_data.FOLDERS.values()} | {squad_data.DATASET}
                   | {"conll2003", *tagging_data.INTENT_CORPORA})
    read = set(dataset_files()) | set(CORPORA) | _require_file_literals() | fine_tuning
    assert {"glue/SST-2", "word2vec"} <= read
    assert read <= set(SOURCES) | set(download_module.NOT_DOWNLOADED), read - set(SOURCES)
    assert not set(SOURCES) & set(download_module.NOT_DOWNLOADED)


def test_a_set_download_does_not_fetch_is_named_with_where_to_get_it(tmp_data_dir):
    with pytest.raises(ValueError) as info:
        download("glue/SST-2", opener=FakeOpener({}))
    message = str(info.value)
    assert "does not fetch 'glue/SST-2'" in message and str(tmp_data_dir / "glue" / "SST-2") in message
    assert "dev.tsv" in message and not (tmp_data_dir / "glue").exists()


@pytest.mark.real_data(*SOURCES)
def test_registered_hashes_match_real_files(real_data_dir):
    for name, files in SOURCES.items():
        for filename, spec in files.items():
            assert sha256_file(real_data_dir / name / filename) == spec.sha256, filename


@pytest.mark.real_data("wikitext-2")
def test_real_wikitext_zip_layout(real_data_dir, tmp_path, monkeypatch):
    # Rebuild the canonical archive's layout (members wikitext-2/wiki.*.tokens) from the
    # byte-identical local copies, and serve it as the canonical URL would.
    files = SOURCES["wikitext-2"]
    members = {
        spec.member: (real_data_dir / "wikitext-2" / fn).read_bytes() for fn, spec in files.items()
    }
    url = next(iter(files.values())).urls[0]
    monkeypatch.setattr(download_module, "_default_opener", FakeOpener({url: _zip(members)}))
    paths = download("wikitext-2", tmp_path)
    assert [sha256_file(p) for p in paths] == [spec.sha256 for spec in files.values()]
