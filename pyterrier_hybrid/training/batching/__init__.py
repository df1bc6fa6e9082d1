"""How batches are drawn: the samplers (``hybrid``, ``streamed``, ``pooled``, ``shuffled``) on one base for their
common arguments and checks (``base``), the registry that tells the trainer which sampler batches which dataset
(``registry``), the trainer's dataset of in-memory pairs (``pairs``) and the fixed validation batches
(``validation``)."""
