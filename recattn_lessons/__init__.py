"""recattn_lessons: the helper package behind the recattn course.

One module, one job:

- ``attention``  reference attention functions and modules (lessons 01-03)
- ``viz``        heatmaps and the interactive explorer
- ``data``       offline MovieLens, splits, batches, synthetic data
- ``models``     SASRec, DIN and non-attention baselines
- ``metrics``    HR@K, NDCG@K, MRR under full and sampled ranking
- ``train``      the training loop and its command line
- ``grading``    the exercise checker

Nothing runs at import time.
"""

__version__ = "0.1.0"
