"""``pyterrier-hybrid index``: encode an ir_datasets collection into a sharded FlexIndex, one shard per process.

Run it plainly for one process, or under ``torchrun`` (torch.distributed, gloo backend: CPUs, one machine or
several nodes sharing the index folder) for one shard per rank::

    torchrun --nproc-per-node 2 -m pyterrier_hybrid.retrieval.sharded \\
        --dataset mmarco/v2/de --model default --candidate-text sentence --index-dir mmarco-de.index

Document i goes to rank i mod N (every rank reads the document stream, keeps its own and encodes only those) into
``<index-dir>/shard-<rank>-of-<N>``; when every rank is done, rank 0 writes ``build.json``. ``pyterrier-hybrid
evaluate --index-dir`` (or :class:`~pyterrier_hybrid.retrieval.large.ShardedIndex`) then searches the shards together
and fuses their top k, which with exact search is the same ranking one process would give.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ..errors import UserError, error_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="ir_datasets id with docs (irds: prefix accepted)")
    parser.add_argument("--model", default="default",
                        help="default (the embedded multilingual-e5-small), a sentence-transformers folder or hub id")
    parser.add_argument("--index-dir", required=True, help="index folder (one shard per process inside it)")
    parser.add_argument("--candidate-text", choices=["sentence", "sentence+context"], default="sentence",
                        help="what is encoded for a document: its text, or text + ' ' + context (LAReQA)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("--chunk-size", type=int, default=4096, help="documents read and encoded at a time")
    parser.add_argument("--max-length", type=int, default=None, help="token limit (default: the model's)")
    parser.add_argument("--overwrite-index", action="store_true",
                        help="delete an index folder built from something else (or unfinished) and build again")


def run(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from pyterrier_hybrid.retrieval.biencoder import BiEncoderConfig, SentenceTransformerBiEncoder
    from pyterrier_hybrid.retrieval.large import ShardedIndex, index_identity, irds_documents

    from ..datasets.irds import load_irds_dataset

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    try:
        dataset_id = args.dataset.removeprefix("irds:")
        dataset = load_irds_dataset(dataset_id)
        if not dataset.has_docs():
            raise UserError(f"ir_datasets dataset {dataset_id!r} has no docs")
        config = BiEncoderConfig(candidate_text=args.candidate_text, precision=args.precision,
                                 batch_size=args.batch_size, max_length=args.max_length)
        encoder = SentenceTransformerBiEncoder(args.model, config)
        index = ShardedIndex(args.index_dir)
        identity = index_identity(dataset_id, encoder)
        stats = build_distributed(index, encoder, irds_documents(dataset), identity=identity,
                                  overwrite=args.overwrite_index, chunk_size=args.chunk_size, rank=rank,
                                  world_size=world_size, barrier=dist.barrier if distributed else None,
                                  gather=all_gather_objects if distributed else None)
        if rank == 0:
            print(json.dumps(stats, indent=2))
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


def all_gather_objects(value):
    """``value`` of every rank, in rank order (``torch.distributed.all_gather_object``): the ``gather`` of
    :func:`build_distributed` under torchrun."""
    import torch.distributed as dist

    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def build_distributed(index, encoder, documents, *, identity: dict, overwrite: bool, chunk_size: int, rank: int,
                      world_size: int, barrier=None, gather=None, show_progress: bool = True) -> dict:
    """Build ``index`` with ``world_size`` processes, this one being ``rank`` (one process: no barrier/gather).

    Every rank checks the folder the same way (reuse a matching finished build, refuse a mismatch unless
    ``overwrite``); rank 0 deletes an old folder; each rank encodes its shard; rank 0 writes the manifest once
    every shard is done. Returns this run's figures (per rank: documents, seconds; reused or not)."""
    barrier = barrier or (lambda: None)
    gather = gather or (lambda value: [value])
    reused = index.check_reusable(identity, overwrite=overwrite)
    if reused:
        return {"index_dir": str(index.path), "reused": True, "doc_count": len(index)}
    if rank == 0 and index.path.exists():
        shutil.rmtree(index.path)
    barrier()
    started = time.perf_counter()
    count, vec_size = index.build_shard(encoder, documents, rank=rank, world_size=world_size, chunk_size=chunk_size,
                                        show_progress=show_progress and rank == 0)
    seconds = time.perf_counter() - started
    shards = gather({"rank": rank, "doc_count": count, "vec_size": vec_size, "seconds": round(seconds, 2)})
    if rank == 0:
        index.write_manifest(identity, [s["doc_count"] for s in shards], max(s["vec_size"] for s in shards))
    barrier()
    return {"index_dir": str(Path(index.path)), "reused": False, "world_size": world_size, "shards": shards,
            "doc_count": sum(s["doc_count"] for s in shards)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyterrier_hybrid.retrieval.sharded",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as error:
        print(error_line(parser.prog, error), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
