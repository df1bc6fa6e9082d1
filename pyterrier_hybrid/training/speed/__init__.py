"""What makes a training step fit and run faster without changing what it learns (mostly): the memory plan
(``memory``), cheaper dropout masks (``fast_dropout``), length-bucketed forwards (``length_buckets``) and which
weights train (``trainable``)."""
