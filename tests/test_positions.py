import math

import pytest
import torch

from recattn_lessons.positions import (linear_distance_bias, relative_distances,
                                       sinusoidal_positions, time_intervals)


def test_sinusoidal_matches_formula():
    p = sinusoidal_positions(7, 6)
    assert p.shape == (7, 6)
    i, c = 5, 1  # column pair c: columns 2c (sin) and 2c+1 (cos)
    angle = i / 10000 ** (2 * c / 6)
    assert p[i, 2 * c].item() == pytest.approx(math.sin(angle))
    assert p[i, 2 * c + 1].item() == pytest.approx(math.cos(angle))
    assert torch.equal(p[0, 0::2], torch.zeros(3, dtype=torch.float64))


def test_sinusoidal_dot_product_depends_only_on_offset():
    p = sinusoidal_positions(40, 16)
    gram = p @ p.T
    for offset in (1, 3, 10):
        diag = torch.diagonal(gram, offset)
        assert (diag - diag[0]).abs().max() < 1e-9
    assert gram[0, 1] > gram[0, 10]  # nearer positions are more alike


def test_sinusoidal_rejects_odd_dim():
    with pytest.raises(ValueError, match="even dim"):
        sinusoidal_positions(4, 5)


def test_relative_distances_and_bias():
    r = relative_distances(4)
    assert r[3, 0] == 3 and r[0, 3] == -3 and torch.equal(torch.diagonal(r), torch.zeros(4, dtype=r.dtype))
    b = linear_distance_bias(4, 0.5)
    assert b[3, 0].item() == -1.5 and b[0, 3].item() == -1.5 and b[2, 2].item() == 0.0
    with pytest.raises(ValueError, match="slope"):
        linear_distance_bias(4, -1.0)


def test_linear_bias_shifts_weight_to_recent_keys():
    scores = torch.zeros(5, 5, dtype=torch.float64)
    w = torch.softmax(scores + linear_distance_bias(5, 1.0), dim=-1)
    assert (w[4, 1:] > w[4, :-1]).all()  # last query: nearer keys get more weight


def test_time_intervals_units_and_clip():
    t = torch.tensor([0, 10, 30, 1000])
    m = time_intervals(t, clip=5)
    assert m.dtype == torch.long and m.shape == (4, 4)
    assert m[1, 0] == 1 and m[2, 1] == 2 and m[2, 0] == 3  # unit = smallest gap, 10
    assert m[3, 0] == 5 and (m == m.T).all()  # clipped, symmetric
    assert torch.equal(time_intervals(torch.tensor([7, 7, 7]), clip=3), torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="1-D"):
        time_intervals(torch.zeros(2, 2), clip=3)
