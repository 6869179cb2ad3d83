"""The tiny hand-checkable batch that the model property tests share.

Three left-padded windows of ``L = 6`` over ``N = 16`` items, their next
items (0 = no target) and ``K = 3`` seeded negatives per position.
"""

import torch

N, L, D, K = 16, 6, 8, 3  # items, window, width, negatives
X = torch.tensor([[0, 0, 0, 5, 9, 2],
                  [0, 4, 8, 1, 12, 3],
                  [7, 6, 11, 10, 2, 14]])  # (B, L) left-padded inputs
Y = torch.tensor([[0, 0, 0, 9, 2, 13],
                  [0, 8, 1, 12, 3, 5],
                  [6, 11, 10, 2, 14, 15]])  # (B, L) next items, 0 = no target
NEG = torch.randint(1, N + 1, (3, L, K), generator=torch.Generator().manual_seed(1))  # (B, L, K)
