"""Data: corpora on disk, downloads, tokenizers and batching pipelines."""

from llm_jax.data.albert_tokenizer import AlbertSentencePieceTokenizer
from llm_jax.data.bert_tokenizers import RobertaBPETokenizer, WordPieceTokenizer
from llm_jax.data.corpora import CORPORA, Corpus, Split, get_corpus, read_corpus, resolve_split
from llm_jax.data.data_record import DataChangedError
from llm_jax.data.download import SOURCES, ChecksumError, RemoteFile, download, sha256_file
from llm_jax.data.gpt2_tokenizer import GPT2BPETokenizer
from llm_jax.data.lm_batches import LMBatches, eval_batches
from llm_jax.data.marian_tokenizer import MarianTokenizer
from llm_jax.data.parallel_batches import TokenBatches, make_example
from llm_jax.data.parallel_batches import eval_batches as parallel_eval_batches
from llm_jax.data.parallel_text import read_parallel, read_tfds_parallel
from llm_jax.data.paths import MissingDataError, data_dir, require_file
from llm_jax.data.text_files import CorpusDecodeError, TextSlice
from llm_jax.data.tfds_source import read_tfds_text
from llm_jax.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WordTokenizer,
    load_tokenizer,
    make_tokenizer,
)

__all__ = [
    "AlbertSentencePieceTokenizer",
    "CORPORA",
    "SOURCES",
    "CharTokenizer",
    "ChecksumError",
    "Corpus",
    "CorpusDecodeError",
    "DataChangedError",
    "GPT2BPETokenizer",
    "LMBatches",
    "MarianTokenizer",
    "MissingDataError",
    "RemoteFile",
    "RobertaBPETokenizer",
    "SentencePieceTokenizer",
    "Split",
    "TextSlice",
    "TokenBatches",
    "Tokenizer",
    "WordPieceTokenizer",
    "WordTokenizer",
    "data_dir",
    "download",
    "eval_batches",
    "get_corpus",
    "load_tokenizer",
    "make_example",
    "make_tokenizer",
    "parallel_eval_batches",
    "read_corpus",
    "read_parallel",
    "read_tfds_parallel",
    "read_tfds_text",
    "require_file",
    "resolve_split",
    "sha256_file",
]
