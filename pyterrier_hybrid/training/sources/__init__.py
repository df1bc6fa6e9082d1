"""The data a run trains on: parallel examples from LAReQA, JSONL and ir_datasets sources (``data``), ``irds:``
sources read lazily (``streaming``, ``streamed_reading``), several sources in one run (``mixture``) and the parallel
groups of examples (``parallel_groups``). Nothing here draws batches or computes a loss."""
