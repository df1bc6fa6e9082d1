"""pyterrier-hybrid: multilingual and cross-lingual dense retrieval for PyTerrier.

Importing the package registers the LAReQA collections with ir_datasets (``lareqa/xquad-r/de`` ...); PyTerrier
imports it through its ``pyterrier.modules`` entry point, so ``pt.get_dataset('irds:lareqa/xquad-r/de')`` works
after ``import pyterrier``. Heavy libraries (torch, sentence-transformers) are imported only by the subpackages
that need them: ``datasets`` -> ``training`` -> ``models``/``retrieval`` -> ``evaluation``.
"""
from .datasets.irds import register_all as _register_datasets

__version__ = "0.1.0"

_register_datasets()
