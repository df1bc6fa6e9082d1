"""The losses beside sentence-transformers' own, one per module: multi-positive InfoNCE of pooled batches
(``multi_positive``), InfoNCE with the base distillation term (``distilled_mnrl``), the loss of parallel distillation
batches (``parallel_distillation``), and the frozen teacher's embeddings and term they share (``teacher``)."""
