"""pyterrier-hybrid: multilingual and cross-lingual dense retrieval for PyTerrier.

The names a user needs are importable from the package itself::

    from pyterrier_hybrid import SentenceTransformerBiEncoder, evaluate_lareqa, lareqa_collection

They are loaded lazily (PEP 562 ``__getattr__``), on first use: ``import pyterrier_hybrid`` (which PyTerrier does
through its ``pyterrier.modules`` entry point) stays fast and does not import torch. ``_EXPORTS`` maps each public
name to the subpackage that defines it; ``__all__`` lists them.

Importing the package registers the LAReQA collections with ir_datasets (``lareqa/xquad-r/de`` ...), so
``pt.get_dataset('irds:lareqa/xquad-r/de')`` works after ``import pyterrier``. Data flows one way between the
subpackages: ``datasets`` -> ``models`` -> ``training`` -> ``retrieval`` -> ``evaluation`` -> ``robustness`` ->
``experiments`` (docs/code-map.md).
"""
from __future__ import annotations

from ._lazy import lazy_exports
from .datasets.irds import register_all as _register_datasets

__version__ = "0.1.0"
"""The package version: the one place it is written (pyproject.toml reads it from here)."""

# Public name -> the module that defines it (relative to this package). Add new public names here.
_EXPORTS: dict[str, str] = {
    # errors
    "UserError": ".errors",
    # datasets
    "LAReQACollection": ".datasets",
    "ParallelExample": ".datasets",
    "lareqa_collection": ".datasets",
    # training
    "HybridTrainingConfig": ".training",
    "train": ".training",
    # models
    "resolve_model": ".models",
    # retrieval
    "BiEncoderConfig": ".retrieval",
    "BM25Config": ".retrieval",
    "BM25Retriever": ".retrieval",
    "DenseRetrieverFactory": ".retrieval",
    "ExactDenseRetriever": ".retrieval",
    "SentenceTransformerBiEncoder": ".retrieval",
    "DebiasConfig": ".retrieval",
    "DebiasedRetrieverFactory": ".retrieval",
    "LanguageDebias": ".retrieval",
    "LanguageIdentifier": ".retrieval",
    # evaluation
    "EvaluationResult": ".evaluation",
    "IrdsEvaluationConfig": ".evaluation",
    "LAReQAEvaluationConfig": ".evaluation",
    "evaluate_irds": ".evaluation",
    "evaluate_lareqa": ".evaluation",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

_register_datasets()
