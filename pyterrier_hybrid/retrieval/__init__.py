"""Retrieval: PyTerrier transformers over a trained (or off-the-shelf) encoder, and a BM25 baseline.

- :class:`SentenceTransformerBiEncoder` (``biencoder``): a ``pyterrier_dr.BiEncoder`` over any
  sentence-transformers model, with its prompts, bf16 autocast on CPU and sentence / sentence+context candidates;
  composes with ``pyterrier_dr.FlexIndex`` for indexing, retrieval and re-ranking;
- :class:`ExactDenseRetriever` / :class:`DenseRetrieverFactory` (``dense``): exhaustive scoring of a candidate
  pool, the retriever the LAReQA evaluation uses (exact ranks over the whole pool);
- :class:`BM25Retriever` / :class:`BM25Factory` (``bm25``): BM25 over bm25s, no Java;
- :class:`MultilingualTokenizer` (``tokenization``): ICU word breaking and Snowball stemming for 11 scripts;
- :class:`LanguageDebias` / :class:`DebiasedRetrieverFactory` (``debias``, ``debias_factory``): training-free
  removal of language directions from query and passage vectors (mean centering, LIR, label-free principal
  directions);
- :class:`SystemSpec` / :func:`build_factory` (``system_specs``): ``NAME=MODEL`` strings (``bm25``, ``default``, a
  hub id or a folder) to retriever factories, as the command line uses them.

Names are imported lazily so that ``import pyterrier_hybrid.retrieval`` does not load torch.
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "SentenceTransformerBiEncoder": ".biencoder",
    "BiEncoderConfig": ".biencoder",
    "ExactDenseRetriever": ".dense",
    "DenseRetrieverFactory": ".dense",
    "EmbeddingCache": ".dense",
    "BM25Retriever": ".bm25",
    "BM25Config": ".bm25",
    "BM25Factory": ".bm25",
    "MultilingualTokenizer": ".tokenization",
    "TokenizerConfig": ".tokenization",
    "SystemSpec": ".system_specs",
    "SystemOptions": ".system_specs",
    "build_factory": ".system_specs",
    "DebiasConfig": ".debias",
    "DebiasedRetrieverFactory": ".debias_factory",
    "LanguageDebias": ".debias",
    "LanguageIdentifier": ".debias_langid",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
