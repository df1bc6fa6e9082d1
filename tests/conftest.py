"""Shared test fixtures.

Tests run offline: every socket connection is refused (so a test that would reach the network fails loudly
instead of hanging), and the Hugging Face hub is put in offline mode.

The LAReQA release files come from ``../shared/datasets/lareqa`` beside the repository, or from
``$PYTERRIER_HYBRID_LAREQA_DIR``, when either is there. Otherwise they are fetched once, before any test runs (so
before the network guard), the way a user's install fetches them: through the package's pinned, SHA-256-checked
download (:mod:`pyterrier_hybrid.datasets.release`) into the ir_datasets home, by default ``.cache/`` in the clone;
``PYTERRIER_HYBRID_LAREQA_URL`` points that download at a mirror of the release folder (``file://`` works). When
neither a folder nor the download gives the files, every test that needs them (marked ``lareqa``, or using the
``lareqa_dir`` fixture) is skipped with one line saying why, and every other test runs.
"""
from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_LAREQA = REPO_ROOT.parent / "shared" / "datasets" / "lareqa"


def _threads_per_worker() -> int | None:
    """Under pytest-xdist (``make test`` runs one worker per core): each worker's share of the cores, else None.

    Two processes with two OpenMP threads each on two cores oversubscribe them, and a training step was measured
    10x slower that way; so every worker, and every command a test starts (it inherits the environment), computes
    on its share only."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers < 2:
        return None
    return max(1, len(os.sched_getaffinity(0)) // workers)


THREADS_PER_WORKER = _threads_per_worker()
if THREADS_PER_WORKER is not None:
    # Set before torch or numpy is imported (their thread pools read these once).
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(THREADS_PER_WORKER)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# ir_datasets creates folders in its home on import: keep them inside the clone.
os.environ.setdefault("IR_DATASETS_HOME", str(REPO_ROOT / ".cache" / "ir_datasets"))
if SHARED_LAREQA.is_dir():
    os.environ.setdefault("PYTERRIER_HYBRID_LAREQA_DIR", str(SHARED_LAREQA))


@dataclass
class LAReQAFiles:
    """Where the tests find the release files (``folder``), or why they cannot (``unavailable``)."""

    folder: Path | None = None
    unavailable: str | None = None


LAREQA = LAReQAFiles()


def find_lareqa_files() -> LAReQAFiles:
    """A configured folder is taken as it is (a damaged one makes the tests that read it fail, naming the file);
    without one, every release file is downloaded (or found already downloaded) and checked now."""
    from pyterrier_hybrid.datasets.release import LANGUAGES, LOCAL_DIR_ENV, ReleaseFiles
    from pyterrier_hybrid.errors import UserError

    files = ReleaseFiles()
    if files.local_dir is not None:
        return LAReQAFiles(folder=files.local_dir)
    try:
        for collection in LANGUAGES:
            files.verify(collection)
    except UserError as e:
        return LAReQAFiles(unavailable=f"LAReQA release files unavailable: no ../shared/datasets/lareqa beside the "
                                       f"repository, no ${LOCAL_DIR_ENV}, and {' '.join(str(e).split())}")
    # Tests and the commands they start read this folder directly, as a configured copy, from now on.
    os.environ[LOCAL_DIR_ENV] = str(files.cache_dir)
    return LAReQAFiles(folder=files.cache_dir)


def pytest_configure(config):
    config.addinivalue_line("markers", "lareqa: needs the LAReQA release files (skipped, with why, without them)")
    if THREADS_PER_WORKER is not None and "torch" in sys.modules:  # imported by a plugin before this file
        sys.modules["torch"].set_num_threads(THREADS_PER_WORKER)
    found = find_lareqa_files()
    LAREQA.folder, LAREQA.unavailable = found.folder, found.unavailable


def pytest_collection_modifyitems(config, items):
    if LAREQA.unavailable is None:
        return
    skip = pytest.mark.skip(reason=LAREQA.unavailable)
    for item in items:
        if item.get_closest_marker("lareqa") is not None:
            item.add_marker(skip)


class NetworkAccessInTest(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (local sockets used by DDP are allowed)."""
    original_connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1") or host.startswith("/")):
            return original_connect(self, address)
        raise NetworkAccessInTest(f"test tried to open a network connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="session", autouse=True)
def synthetic_collection() -> None:
    """The synthetic ir_datasets collection (``pyterrier-hybrid-synthetic/SIZE/LANG``) of the streamed-training
    tests, registered once for the session in the test process (importing the package does not register it; the
    commands a test starts register it themselves when they are asked for one of its ids)."""
    from pyterrier_hybrid.datasets.synthetic import register_synthetic_collection

    register_synthetic_collection()


@pytest.fixture(scope="session")
def lareqa_dir() -> Path:
    """The folder of the LAReQA release files (``<dir>/xquad-r/de.json``); skips the test when there is none."""
    if LAREQA.folder is None:
        pytest.skip(LAREQA.unavailable)
    return LAREQA.folder


TINY_TRAINING_TEXTS = [
    "query: passage: the quick brown fox jumps over the lazy dog",
    "Die Verteidigung der Panthers gab nur 308 Punkte ab.",
    "北京是中国的首都，人口众多。",
    "ประเทศไทยมีประชากรมากกว่าหกสิบล้านคน",
    "भारत की राजधानी नई दिल्ली है।",
    "مرحبا بكم في العالم",
    "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "Москва является столицей России.",
    "Madrid es la capital de España.",
    "Hà Nội là thủ đô của Việt Nam.",
    "İstanbul Türkiye'nin en büyük şehridir.",
]


#: The tiny model's token limit: every LAReQA answer sentence fits with its small vocabulary (at 128, one German
#: sentence in ten did not, and every test encoding sentences warned of truncation); many paragraphs still do not.
TINY_MODEL_MAX_TOKENS = 1024


def build_tiny_sentence_transformer(path: Path, seed: int = 0, texts: list[str] | None = None) -> Path:
    """A randomly initialised 2-layer BERT with a WordPiece vocabulary trained on a few multilingual texts,
    saved as a sentence-transformers folder with the E5 prompts, mean pooling and normalisation."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = Path(path)
    corpus = list(texts or []) + TINY_TRAINING_TEXTS
    if LAREQA.folder is not None:
        import json

        for lang in ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]:
            data = json.loads((LAREQA.folder / "xquad-r" / f"{lang}.json").read_text(encoding="utf-8"))
            for article in data["data"][:3]:
                for paragraph in article["paragraphs"]:
                    corpus.append(paragraph["context"])
                    corpus.extend(q["question"] for q in paragraph["qas"])
    tokenizer = Tokenizer(tok_models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=3000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tokenizer.train_from_iterator(corpus, trainer)
    from tokenizers.processors import TemplateProcessing

    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=TINY_MODEL_MAX_TOKENS,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=TINY_MODEL_MAX_TOKENS + 2,
    )
    hf_dir = path / "_hf"
    BertModel(config).save_pretrained(hf_dir)
    hf_tokenizer.save_pretrained(hf_dir)
    transformer = modules.Transformer(str(hf_dir), max_seq_length=TINY_MODEL_MAX_TOKENS)
    pooling = modules.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, modules.Normalize()],
        prompts={"query": "query: ", "passage": "passage: "},
        default_prompt_name=None,
        device="cpu",
    )
    model.save(str(path))
    return path


@pytest.fixture()
def one_torch_thread():
    """One torch thread for the test (on a shared 2-core machine, two threads of a tiny model spend most of their
    time waiting for each other); the previous count is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """Path of a tiny random sentence-transformers model folder (built once per test session)."""
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-model") / "model")
