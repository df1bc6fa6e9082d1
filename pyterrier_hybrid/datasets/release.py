"""The LAReQA release files (XQuAD-R, MLQA-R): where they come from, their checksums, and how a local path is found.

A file is taken, in this order, from:

1. a local copy of the release folder, when one is configured: ``local_dir`` given explicitly, else the
   environment variable ``PYTERRIER_HYBRID_LAREQA_DIR`` (layout ``<dir>/xquad-r/de.json``). A configured copy is
   authoritative: a missing file is an error (it names the expected path and the download address), never a
   silent download;
2. the ir_datasets home (``$IR_DATASETS_HOME/lareqa/<collection>/<lang>.json``): a copy placed there by hand is
   used, otherwise the file is downloaded there from the pinned commit with ir_datasets' own download machinery,
   which verifies the MD5 while streaming. ``PYTERRIER_HYBRID_LAREQA_URL`` replaces the pinned address by a mirror
   of the release folder (``<url>/xquad-r/de.json``; any scheme urllib opens, ``file://`` included), for machines
   that reach no GitHub.

Every file is then checked against its SHA-256 before it is parsed; a mismatching file is never used.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ChecksumMismatchError, MissingReleaseFileError, UnknownCollectionError, UnknownLanguageError

LOCAL_DIR_ENV = "PYTERRIER_HYBRID_LAREQA_DIR"
MIRROR_URL_ENV = "PYTERRIER_HYBRID_LAREQA_URL"
REPOSITORY = "google-research-datasets/lareqa"
URL_TEMPLATE = "https://raw.githubusercontent.com/{repository}/{commit}/{collection}/{lang}.json"

# MLQA-R was removed from the repository's head later, so each collection is pinned to its own commit.
COMMITS = {
    "xquad-r": "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c",
    "mlqa-r": "354d67d1cd066854cdfbf5ad0e6105528976141d",
}
LANGUAGES = {
    "xquad-r": ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"),
    "mlqa-r": ("ar", "de", "en", "es", "hi", "vi", "zh"),
}
LICENCES = {"xquad-r": "CC BY-SA 4.0", "mlqa-r": "CC BY-SA 3.0 (MLQA); see mlqa-r/LICENSE in the release"}

# (sha256, md5) of every release file, byte-identical to the files at the pinned commits.
CHECKSUMS = {
    "mlqa-r/ar.json": ("2132fbc03208535c0fe01f2e2c5121d06f9c2aa799af93b0a719dbc105bdf137", "0cabca7da64041a9bcfbfa6397def23e"),
    "mlqa-r/de.json": ("ce9454dc5aa6f2d85c23cd6e49cb367fbb7c4c6e62d7f71e355c6b5dae4d0886", "5fdb66b2614ed2556d05356968eca0b2"),
    "mlqa-r/en.json": ("fedd9a5cc0848dda80caf84aa36f482adaae230526a3f6e9e86926a93ef3b1e4", "9ea5e240816f8a9c668ec49afbf45e7d"),
    "mlqa-r/es.json": ("70ecba276b8c96a692b120693a595d076ce94ad21d4b28311538a9fcbfe0f9d7", "1dc80d875f9e37192668eb90bf3e8a2d"),
    "mlqa-r/hi.json": ("4dd0fb3c06f737a5481d705bc1dcac7876712a5815c9265908fbb3a0696cb654", "84cee6c9864f8662ef1ef3ed5b96f990"),
    "mlqa-r/vi.json": ("9d3baff6ba03e6793b25594217265ea59a136b9733833dca8a9582a84a78ff85", "395e63b077fb8af6735ca9c4337d656c"),
    "mlqa-r/zh.json": ("57f01d2fff50cf3392805635b01445339f225ad5bf28ba8443b12f8dbd1e69dc", "b9c78c32a0008dba5f93aea0ac5c2429"),
    "xquad-r/ar.json": ("c52922d3b8ac1ae03ed5ac38647ad59870dca3dda2beefe18ecdc30729acb69d", "1114954691ce6b8ed452aa2befcd21c2"),
    "xquad-r/de.json": ("16fb0f4bf4916154b585a20c24c66074591c9718a1affe764ff4697572328949", "ca34197b707b08bd4e03db4b3640e863"),
    "xquad-r/el.json": ("163fd43ee785a30eb534ae2061e9eaa766a7ee4e8ffce5e4b422480c150f64b6", "d4982e87c3eff32830cc4d33a26e63fa"),
    "xquad-r/en.json": ("7b0954f39297c27a31fef610f0883337dd2907fa8699151dc922afdd0fa12ffe", "b8c2383f52bc96438cf09a69cdccabdd"),
    "xquad-r/es.json": ("f8e836b2d91009c4363e04315f7ede363eedbbb49c67dda60de6c4aa782f58de", "e4a69ab74a1f71d64f771f419c6e3eea"),
    "xquad-r/hi.json": ("ea45ba8ae4513d1533b222bebdc02a90bc319c055d3aeea68584a053d2e92872", "390ee65a0559e65033f4cc44a27617fe"),
    "xquad-r/ru.json": ("7f4dff853538b9a5fcc28c070b8bb983a5c5d190ac747b8e005a1ada9cab18f1", "e6ef8814695fead9f2227d9b44144417"),
    "xquad-r/th.json": ("c3a041864c3a9fb0b4dd91cfdf99cf36b411b3e704c58a303c97bc6dc786cfe4", "1270594bf229e0fa2082d6508095e0b1"),
    "xquad-r/tr.json": ("f3e8c13002bbce154a4578f535f7533cb70f3da08840e6b62735935baec7bd94", "6ee6aed1a7a5745b2cd31322c7d58c15"),
    "xquad-r/vi.json": ("e35926bf5cc6fc6ecbdfca49467aabeb454f08d152d7818143a906bd31dde995", "72a138effea0cea9d5f7573553d70809"),
    "xquad-r/zh.json": ("80c2cde7b9c2fb134c303cbb52f2ba396ead9eb0014aec43993543d2ba9e93ed", "2122b7e42e66c2d3cbdbe78d21b1a11c"),
}


def check_collection(collection: str) -> str:
    if collection not in LANGUAGES:
        raise UnknownCollectionError(
            f"unknown LAReQA collection {collection!r}; valid collections: {', '.join(sorted(LANGUAGES))}"
        )
    return collection


def check_languages(collection: str, langs) -> tuple[str, ...]:
    """Validate a language selection (None = all languages of the collection), keeping the collection's order."""
    valid = LANGUAGES[check_collection(collection)]
    if langs is None:
        return valid
    if isinstance(langs, str):
        langs = [langs]
    unknown = [lang for lang in langs if lang not in valid]
    if unknown:
        raise UnknownLanguageError(
            f"unknown language(s) {', '.join(map(repr, unknown))} for {collection}; valid languages: {' '.join(valid)}"
        )
    return tuple(lang for lang in valid if lang in set(langs))


@dataclass(frozen=True)
class ReleaseFile:
    collection: str
    lang: str

    @property
    def relative_path(self) -> str:
        return f"{self.collection}/{self.lang}.json"

    @property
    def url(self) -> str:
        return URL_TEMPLATE.format(
            repository=REPOSITORY, commit=COMMITS[self.collection], collection=self.collection, lang=self.lang
        )

    @property
    def download_url(self) -> str:
        """Where a download fetches the file: the mirror of ``$PYTERRIER_HYBRID_LAREQA_URL`` when set, else
        :attr:`url` (the pinned commit). The checksums are the same either way."""
        mirror = os.environ.get(MIRROR_URL_ENV)
        return f"{mirror.rstrip('/')}/{self.relative_path}" if mirror else self.url

    @property
    def sha256(self) -> str:
        return CHECKSUMS[self.relative_path][0]

    @property
    def md5(self) -> str:
        return CHECKSUMS[self.relative_path][1]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ReleaseFiles:
    """Resolves each release file to a verified local path (see the module docstring for the search order)."""

    def __init__(self, local_dir: str | Path | None = None, cache_dir: str | Path | None = None):
        self._local_dir_origin = "the local_dir argument"
        if local_dir is None and os.environ.get(LOCAL_DIR_ENV):
            local_dir = os.environ[LOCAL_DIR_ENV]
            self._local_dir_origin = f"${LOCAL_DIR_ENV}"
        self.local_dir = Path(local_dir) if local_dir is not None else None
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._verified: dict[ReleaseFile, Path] = {}

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            import ir_datasets

            self._cache_dir = ir_datasets.util.home_path() / "lareqa"
        return self._cache_dir

    def path(self, collection: str, lang: str) -> Path:
        check_languages(collection, [lang])
        release_file = ReleaseFile(collection, lang)
        if release_file not in self._verified:
            path = self._locate(release_file)
            self._verify(release_file, path)
            self._verified[release_file] = path
        return self._verified[release_file]

    def verify(self, collection: str, langs=None) -> dict[str, Path]:
        """The verified path of every language file of ``collection`` (``langs``: a selection, None: all).

        Raises the dataset error of the first unknown language, missing file or checksum mismatch; commands call it
        before they build a model so that bad data is reported at once."""
        return {lang: self.path(collection, lang) for lang in check_languages(collection, langs)}

    def _locate(self, release_file: ReleaseFile) -> Path:
        if self.local_dir is not None:
            path = self.local_dir / release_file.relative_path
            if not path.is_file():
                raise MissingReleaseFileError(
                    f"LAReQA file missing: expected {path} (local copy configured by {self._local_dir_origin}); "
                    f"download it from {release_file.url}"
                )
            return path
        path = self.cache_dir / release_file.relative_path
        if path.is_file():
            return path
        return self._download(release_file, path)

    @staticmethod
    def _download(release_file: ReleaseFile, path: Path) -> Path:
        url = release_file.download_url
        try:
            if url != release_file.url:
                return _download_from_mirror(url, path)
            from ir_datasets.util import Download, RequestsDownload

            download = Download([RequestsDownload(url)], cache_path=str(path), expected_md5=release_file.md5)
            return Path(download.path())
        except Exception as e:
            raise MissingReleaseFileError(
                f"could not download LAReQA file {url} to {path} ({' '.join(str(e).split())}); without network "
                f"access, place the release folder locally and set {LOCAL_DIR_ENV} to it, or set {MIRROR_URL_ENV} to "
                "a mirror of it"
            ) from e

    def _verify(self, release_file: ReleaseFile, path: Path) -> None:
        actual = sha256_of(path)
        if actual == release_file.sha256:
            return
        message = (
            f"checksum mismatch for {path}: expected sha256 {release_file.sha256}, got {actual}; the file is not used"
        )
        if self.local_dir is None:
            # A corrupt download in our cache is moved aside (not deleted) so that the next call downloads afresh.
            quarantined = path.with_name(path.name + ".sha256-mismatch")
            path.replace(quarantined)
            message += f" (moved to {quarantined}; it will be downloaded again on the next use)"
        raise ChecksumMismatchError(message)


def _download_from_mirror(url: str, path: Path) -> Path:
    """Copy ``url`` to ``path`` through a ``.partial`` file renamed when complete, so that an interrupted copy is
    never taken for the file (the caller checks the SHA-256 afterwards)."""
    import shutil
    import urllib.request

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
            shutil.copyfileobj(response, f)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
