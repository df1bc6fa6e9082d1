"""A pyterrier-dr bi-encoder over a sentence-transformers model, with the model's prompts and fast CPU encoding.

It composes like any :class:`pyterrier_dr.BiEncoder`::

    encoder = SentenceTransformerBiEncoder()                       # the embedded default model
    index = pyterrier_dr.FlexIndex("xquad.flex")
    (encoder >> index.indexer()).index(candidates)                 # docno, text, context
    retriever = encoder >> index.np_retriever(num_results=100)     # qid, query -> results
    reranker = bm25 >> encoder.text_scorer()                       # re-ranking

What it adds to pyterrier-dr's ``SBertBiEncoder``:

- the model's prompts ("query: " / "passage: " from the folder's ``prompts``, or given explicitly);
- candidates encoded as the sentence alone or sentence plus context (LAReQA's choice), see ``candidate_text``;
- on CPU, bfloat16 autocast when the processor has native bfloat16 instructions (about 2.5x faster than float32
  here, cosine 0.99999 to float32 on multilingual-e5-small); float32 on request;
- texts sorted by token count for batching (less padding than sentence-transformers' character-count sort for
  scripts whose characters are worth very different numbers of tokens), results in the original order;
- each distinct text encoded once per call (pyterrier-dr's document encoder encodes every row, so re-ranking
  encoded a passage once per query that retrieved it);
- clear errors for empty queries (naming the qid) and missing columns, and one warning per call
  (:class:`TextTruncationWarning`), for queries and passages alike, when texts are truncated to the model's limit.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_dr
import torch
from pyterrier_dr import SimFn
from tqdm.auto import tqdm
from tqdm.std import tqdm as std_tqdm

from ..datasets.candidates import CANDIDATE_TEXT_OPTIONS, join_candidate_text
from ..models import load_sentence_transformer, resolve_model
from ..precision import native_bf16_available

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

CandidateText = Literal["sentence", "sentence+context"]
Precision = Literal["auto", "bf16", "fp32"]

PRECISION_OPTIONS: tuple[str, ...] = ("auto", "bf16", "fp32")


class TextTruncationWarning(UserWarning):
    """Texts longer than the model's token limit were truncated (one warning per encoding call, with the count)."""


@dataclass(frozen=True)
class BiEncoderConfig:
    """How :class:`SentenceTransformerBiEncoder` turns texts into vectors.

    Attributes:
        candidate_text: ``"sentence"`` encodes a candidate's ``text`` column alone; ``"sentence+context"`` (LAReQA's
            setting) encodes ``text + " " + context``.
        precision: ``"auto"`` uses bfloat16 autocast where the device runs it natively (CPUs with AVX512-BF16 or
            AMX, CUDA GPUs with bfloat16) and float32 elsewhere; ``"bf16"`` forces autocast; ``"fp32"`` disables it.
        query_prompt / passage_prompt: prefixes for queries / candidates; ``None`` takes the model's
            ``prompts["query"]`` / ``prompts["passage"]`` (empty when the model has none).
        batch_size: at most this many texts per forward pass.
        max_batch_tokens: and at most this many (padded) tokens per forward pass, so batches of long texts are
            smaller (on CPU, bfloat16 throughput dropped by a third at 64 texts of ~300 tokens and by two thirds at
            128, against 8-32); ``None``: no token limit.
        max_length: token limit (``None``: the model's ``max_seq_length``); longer texts are truncated.
        device: torch device (``None``: CUDA when available, else CPU).
        verbose: show tqdm progress bars while encoding.
    """

    candidate_text: CandidateText = "sentence+context"
    precision: Precision = "auto"
    query_prompt: str | None = None
    passage_prompt: str | None = None
    batch_size: int = 64
    max_batch_tokens: int | None = 8192
    max_length: int | None = None
    device: str | None = None
    verbose: bool = False

    def __post_init__(self):
        if self.candidate_text not in CANDIDATE_TEXT_OPTIONS:
            raise ValueError(f"candidate_text must be one of {CANDIDATE_TEXT_OPTIONS}, got {self.candidate_text!r}")
        if self.precision not in PRECISION_OPTIONS:
            raise ValueError(f"precision must be one of {PRECISION_OPTIONS}, got {self.precision!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be a positive integer or None, got {self.max_batch_tokens}")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be a positive integer or None, got {self.max_length}")


def candidate_texts(candidates: pd.DataFrame, candidate_text: CandidateText, text_field: str = "text") -> list[str]:
    """The texts to encode for a candidates frame (``text_field`` and, for "sentence+context", ``context``).

    Raises:
        pyterrier.validate.InputValidationError: a needed column is missing (the message names it).
        ValueError: a needed column has missing values.
    """
    needed = [text_field] if candidate_text == "sentence" else [text_field, "context"]
    pt.validate.columns(candidates, includes=needed)
    for column in needed:
        missing = candidates[column].isna()
        if missing.any():
            where = f" (docno {candidates['docno'][missing].iloc[0]!r})" if "docno" in candidates.columns else ""
            raise ValueError(f"column {column!r} has {int(missing.sum())} missing value(s){where}")
    sentences = candidates[text_field].astype(str).tolist()
    if candidate_text == "sentence":
        return sentences
    return [join_candidate_text(s, c) for s, c in zip(sentences, candidates["context"].astype(str).tolist())]


def check_queries(topics: pd.DataFrame) -> None:
    """Reject empty or whitespace-only queries, naming their qids (an empty query would encode as the bare prompt
    and silently rank candidates by similarity to "query: ")."""
    empty = topics["query"].isna() | (topics["query"].astype(str).str.strip() == "")
    if empty.any():
        qids = topics["qid"][empty].astype(str).tolist() if "qid" in topics.columns else []
        shown = ", ".join(repr(q) for q in qids[:5]) + (f" and {len(qids) - 5} more" if len(qids) > 5 else "")
        raise ValueError(f"empty or whitespace-only query for qid {shown}" if qids else "empty query")


def resolve_autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain float32)."""
    if precision == "fp32":
        return None
    if precision == "bf16" or native_bf16_available(device):
        return torch.bfloat16
    return None


class SentenceTransformerBiEncoder(pyterrier_dr.BiEncoder):
    """A :class:`pyterrier_dr.BiEncoder` over a sentence-transformers model (queries and candidates share it).

    As a transformer (pyterrier-dr's contract): ``qid, query`` -> ``+ query_vec``; ``docno, text[, context]`` ->
    ``+ doc_vec``; ``qid, query, docno, text[, context]`` -> ``+ score, rank``. Use :meth:`query_encoder`,
    :meth:`doc_encoder` and :meth:`text_scorer` to choose explicitly.

    Args:
        model: a sentence-transformers folder, a hub id, ``None``/"default" for the embedded default model (all
            through :func:`pyterrier_hybrid.models.resolve_model`), or a loaded ``SentenceTransformer`` (e.g. one
            just trained; it is used as is, not copied).
        config: a :class:`BiEncoderConfig`; keyword arguments override its fields.
    """

    def __init__(self, model: "str | Path | SentenceTransformer | None" = None, config: BiEncoderConfig | None = None,
                 **overrides: Any):
        config = replace(config or BiEncoderConfig(), **overrides)
        super().__init__(batch_size=config.batch_size, text_field="text", verbose=config.verbose)
        from sentence_transformers import SentenceTransformer

        self.encoder_config = config
        if isinstance(model, SentenceTransformer):
            # a model handed over (e.g. mid-training) stays where it is unless a device is asked for
            self.device = torch.device(config.device) if config.device else model.device
            self.model = model
            self.model_name = getattr(model, "model_card_data", None) and model.model_card_data.base_model
            self.model_name = self.model_name or f"<SentenceTransformer {id(model):#x}>"
        else:
            self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model_name = resolve_model(model)
            self.model = load_sentence_transformer(self.model_name, device=str(self.device))
        self.model.to(self.device).eval()
        self.candidate_text = config.candidate_text
        self.query_prompt = (
            config.query_prompt if config.query_prompt is not None else self.model.prompts.get("query", "")
        )
        self.passage_prompt = (
            config.passage_prompt if config.passage_prompt is not None else self.model.prompts.get("passage", "")
        )
        self.max_length = config.max_length or self.model.max_seq_length or self.model.tokenizer.model_max_length
        self.autocast_dtype = resolve_autocast_dtype(config.precision, self.device)

    def __repr__(self) -> str:
        precision = "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"
        return (f"SentenceTransformerBiEncoder({self.model_name!r}, candidate_text={self.candidate_text!r}, "
                f"precision={precision!r})")

    @property
    def sim_fn(self) -> SimFn:
        """Dot product, as sentence-transformers models for retrieval are trained (E5 normalises, so it is cosine)."""
        return SimFn.dot

    # --- pyterrier-dr's encoding interface -------------------------------------------------------------------

    def encode_queries(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        """Vectors [n, dim] (float32) of query texts, with the query prompt. Empty queries raise ValueError."""
        texts, show_progress = _materialise(texts)
        for position, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"empty or whitespace-only query (position {position} of {len(texts)})")
        return self.encode_texts(texts, self.query_prompt, batch_size=batch_size, kind="queries",
                                 show_progress=show_progress)

    def encode_docs(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        """Vectors [n, dim] (float32) of candidate texts (already joined, see :func:`candidate_texts`), with the
        passage prompt."""
        texts, show_progress = _materialise(texts)
        return self.encode_texts(texts, self.passage_prompt, batch_size=batch_size, kind="passages",
                                 show_progress=show_progress)

    def encode_queries_torch(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Query vectors as a tensor that keeps gradients (for training); float32, no autocast, input order."""
        batch_size = batch_size or self.batch_size
        chunks = []
        for start in range(0, len(texts), batch_size):
            features = self.model.preprocess(list(texts[start:start + batch_size]), prompt=self.query_prompt)
            features = _to_device(features, self.device)
            chunks.append(self.model(features)["sentence_embedding"])
        if not chunks:
            return torch.empty((0, _embedding_dimension(self.model)), device=self.device)
        return torch.cat(chunks)

    def encode_candidates(self, candidates: pd.DataFrame, batch_size: int | None = None) -> np.ndarray:
        """Vectors [len(candidates), dim] of a candidates frame, following ``candidate_text``."""
        return self.encode_docs(candidate_texts(candidates, self.candidate_text, self.text_field), batch_size)

    def encode_texts(self, texts: Sequence[str], prompt: str, *, batch_size: int | None = None,
                     kind: str = "texts", show_progress: bool | None = None) -> np.ndarray:
        """Encode ``prompt + text`` for each distinct text once: longest first, in batches limited by ``batch_size``
        and the configured ``max_batch_tokens``, under the configured autocast; float32 [n, dim] in the input order
        (repeated texts get the same vector).

        Texts longer than the token limit are truncated; one warning per call says how many.
        """
        batch_size = batch_size or self.batch_size
        dim = _embedding_dimension(self.model)
        if len(texts) == 0:
            return np.empty((0, dim), dtype=np.float32)
        # pyterrier-dr's query encoder encodes each distinct query once (np.unique), its document encoder every row:
        # a re-ranking frame (bm25 % 100 >> text_scorer) repeats a passage for each query that retrieved it, which
        # on XQuAD-R de meant ~93 encodings of each passage. Deduplicating here covers queries, passages and
        # pyterrier-dr's own callers alike.
        positions: dict[str, int] = {}
        inverse = np.fromiter((positions.setdefault(text, len(positions)) for text in texts), dtype=np.int64,
                              count=len(texts))
        distinct = list(positions)
        token_counts = self._token_counts([prompt + text for text in distinct])
        truncated = int((token_counts > self.max_length)[inverse].sum())
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} {kind} are longer than the model's limit of {self.max_length} tokens "
                f"(prompt and special tokens included) and were truncated to it",
                TextTruncationWarning,
                stacklevel=3,
            )
        # Sorting by token count puts texts of similar length in one batch, so little compute goes into padding.
        lengths = np.minimum(token_counts, self.max_length)
        order = np.argsort(-lengths, kind="stable")
        vectors = np.empty((len(distinct), dim), dtype=np.float32)
        show = self.verbose if show_progress is None else show_progress
        progress = tqdm(total=len(distinct), desc=f"Encoding {kind}", unit=kind.rstrip("s"), disable=not show)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast, progress:
            for rows in _batches(order, lengths, batch_size, self.encoder_config.max_batch_tokens):
                features = self.model.preprocess([distinct[i] for i in rows], prompt=prompt,
                                                 processing_kwargs={"text": {"max_length": self.max_length}})
                embeddings = self.model(_to_device(features, self.device))["sentence_embedding"]
                vectors[rows] = embeddings.float().cpu().numpy()
                progress.update(len(rows))
        return vectors if len(distinct) == len(texts) else vectors[inverse]

    def _token_counts(self, texts: list[str]) -> np.ndarray:
        """Token counts with special tokens, capped at max_length + 1 (enough to tell which texts get truncated
        while keeping the tokenizer from working through very long texts or warning about their length)."""
        encoded = self.model.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self.max_length + 1,
                                       return_attention_mask=False, return_token_type_ids=False)
        return np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(texts))

    # --- transformers ----------------------------------------------------------------------------------------

    def query_encoder(self, verbose: bool | None = None, batch_size: int | None = None) -> pt.Transformer:
        """``qid, query`` -> ``+ query_vec``; empty queries raise ValueError naming the qid."""
        return CheckedQueryEncoder(self, verbose=verbose, batch_size=batch_size)

    def doc_encoder(self, verbose: bool | None = None, batch_size: int | None = None) -> pt.Transformer:
        """``docno, text[, context]`` -> ``+ doc_vec`` (``context`` needed for "sentence+context")."""
        return CandidateEncoder(self, verbose=verbose, batch_size=batch_size)


class CheckedQueryEncoder(pyterrier_dr.BiQueryEncoder):
    """pyterrier-dr's query encoder, rejecting empty queries with their qids before any tokenizer sees them."""

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        pt.validate.columns(inp, includes=["query"])
        check_queries(inp)
        return super().transform(inp)


class CandidateEncoder(pyterrier_dr.BiDocEncoder):
    """pyterrier-dr's document encoder, encoding the candidate text the bi-encoder is configured for.

    Input: ``text`` (and ``context`` for "sentence+context"), usually with ``docno``. Output: input + ``doc_vec``.
    """

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        model: SentenceTransformerBiEncoder = self.bi_encoder_model
        texts = candidate_texts(inp, model.candidate_text, self.text_field)
        vectors = model.encode_texts(texts, model.passage_prompt, batch_size=self.batch_size, kind="passages",
                                     show_progress=self.verbose)
        return inp.assign(doc_vec=list(vectors))


def _materialise(texts: Iterable[str]) -> tuple[list[str], bool | None]:
    """A list of str from pyterrier-dr's inputs (list, numpy array or a tqdm wrapper, which means "show progress";
    the wrapper is closed and replaced by a progress bar over the sorted batches)."""
    show_progress = None
    if isinstance(texts, std_tqdm):
        texts.disable = True
        show_progress = True
        texts = texts.iterable
    return [str(t) for t in texts], show_progress


def _batches(order: np.ndarray, lengths: np.ndarray, batch_size: int, max_batch_tokens: int | None):
    """Consecutive runs of ``order`` (longest text first) of at most ``batch_size`` texts and, padded to their first
    (longest) text, at most ``max_batch_tokens`` tokens; a text longer than the budget gets a batch of its own.
    sentence-transformers only batches by count; this keeps long-text batches small enough to run fast."""
    start = 0
    while start < len(order):
        size = batch_size
        if max_batch_tokens is not None:
            size = max(1, min(size, max_batch_tokens // max(1, int(lengths[order[start]]))))
        yield order[start:start + size]
        start += size


def _embedding_dimension(model: "SentenceTransformer") -> int:
    # sentence-transformers 6 renamed get_sentence_embedding_dimension (now deprecated) to get_embedding_dimension.
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return getter()


def _to_device(features: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


__all__ = [
    "BiEncoderConfig",
    "CandidateEncoder",
    "CheckedQueryEncoder",
    "SentenceTransformerBiEncoder",
    "TextTruncationWarning",
    "candidate_texts",
    "check_queries",
    "join_candidate_text",
    "resolve_autocast_dtype",
]
