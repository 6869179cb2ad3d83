"""Semantic IDs (lesson 10): residual k-means, RQ-VAE, baselines and their diagnostics."""

import math

import pytest
import torch

from recattn_lessons.items import semantic_ids as S


def mixture(n=500, d=16, centres=8, seed=0):
    """``(n, d)`` Gaussian mixture: ``centres`` well-separated blobs with unit noise."""
    g = torch.Generator().manual_seed(seed)
    means = 6 * torch.randn(centres, d, generator=g)
    return means[torch.randint(centres, (n,), generator=g)] + torch.randn(n, d, generator=g)


def test_residual_quantize_matches_a_loop():
    g = torch.Generator().manual_seed(1)
    residual, codebook = torch.randn(30, 5, generator=g), torch.randn(7, 5, generator=g)
    codes, quantized, new = S.residual_quantize(residual, codebook)
    for i in range(30):
        dist = [float(((residual[i] - codebook[k]) ** 2).sum()) for k in range(7)]
        assert int(codes[i]) == min(range(7), key=dist.__getitem__)
    torch.testing.assert_close(quantized, codebook[codes])
    torch.testing.assert_close(new, residual - codebook[codes])


def test_kmeans_tiny_cases_by_hand():
    x = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    centroids, assign = S.kmeans(x, 2, generator=torch.Generator().manual_seed(0))
    assert sorted(centroids.squeeze(1).tolist()) == [0.5, 10.5]
    assert assign[0] == assign[1] != assign[2] == assign[3]
    assert centroids.dtype == torch.float64
    own, _ = S.kmeans(x, 4, generator=torch.Generator().manual_seed(0), init="random")
    assert sorted(own.squeeze(1).tolist()) == [0.0, 1.0, 10.0, 11.0]  # k = N: every point its own
    with pytest.raises(ValueError, match="k <= N"):
        S.kmeans(x, 5)


def test_kmeans_plus_plus_draws_proportionally_to_squared_distance():
    x = torch.tensor([[0.0], [1.0], [3.0]]).double()
    seconds = []
    for seed in range(600):
        first, second = S._init_centroids(x, 2, "kmeans++", torch.Generator().manual_seed(seed))
        if float(first) == 0.0:
            seconds.append(float(second))
    share = seconds.count(3.0) / len(seconds)  # 3^2 / (1^2 + 3^2) = 0.9 (not 3 / 4)
    assert len(seconds) > 150 and abs(share - 0.9) < 0.06


def test_dead_code_stays_dead_without_reset_and_moves_to_the_farthest_point_with_it():
    x = torch.tensor([[0.0], [0.0], [0.0], [10.0]])
    start = torch.tensor([[0.0], [100.0]])  # code 1 is nearest to no point: dead
    stuck, assign = S.kmeans(x, 2, init=start, reset_dead=False)
    assert stuck.squeeze(1).tolist() == [2.5, 100.0] and assign.tolist() == [0, 0, 0, 0]
    fixed, assign = S.kmeans(x, 2, init=start, reset_dead=True)
    assert fixed.squeeze(1).tolist() == [0.0, 10.0] and assign.tolist() == [0, 0, 0, 1]


def test_dead_code_reset_raises_usage_on_a_collapsing_fixture():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.zeros(90, 4), 5 + torch.randn(10, 4, generator=g)])  # 90 duplicates
    for seed in range(3):
        _, a_off = S.kmeans(x, 8, generator=torch.Generator().manual_seed(seed), init="random",
                            reset_dead=False)
        _, a_on = S.kmeans(x, 8, generator=torch.Generator().manual_seed(seed), init="random")
        assert S.codebook_usage(a_off, 8) <= 0.5  # random starts pile up on the duplicates
        assert S.codebook_usage(a_on, 8) == 1.0


def test_rq_kmeans_error_falls_with_depth_and_encodes_cold_items():
    x = mixture()
    fit = S.rq_kmeans(x, levels=3, codebook_size=8, seed=0)
    assert fit.codes.shape == (500, 3) and fit.codes.dtype == torch.long
    assert 0 <= int(fit.codes.min()) and int(fit.codes.max()) < 8
    err = fit.recon_error
    assert float((x.double() ** 2).sum(1).mean()) > err[0] > err[1] > err[2]
    recon = sum(book[fit.codes[:, l]] for l, book in enumerate(fit.codebooks))  # (N, D)
    assert math.isclose(float(((x.double() - recon) ** 2).sum(1).mean()), err[2], rel_tol=1e-9)
    torch.testing.assert_close(fit.reconstruct(fit.codes), recon)
    codes = fit.encode(x[:50])  # the same vectors as "cold" items
    assert torch.equal(codes, fit.codes[:50])
    assert torch.equal(S.rq_kmeans(x, 3, 8, seed=0).codes, fit.codes)  # seeded
    assert not torch.equal(S.rq_kmeans(x, 3, 8, seed=1).codes, fit.codes)


def test_rqvae_trains_and_its_fixes_prevent_collapse():
    x = mixture(n=600, d=16, centres=16)
    kw = dict(levels=2, codebook_size=16, latent_dim=8, steps=300, batch_size=128, lr=3e-3,
              log_every=50, progress=False)
    model, hist = S.train_rqvae(x, **kw)
    assert hist["step"][0] == 1 and hist["step"][-1] == 300
    assert hist["recon"][-1] < 0.5 * hist["recon"][0] and hist["loss"][-1] < hist["loss"][0]
    assert min(u[-1] for u in hist["usage"]) >= 0.75
    codes = model.encode(x)
    assert codes.shape == (600, 2) and int(codes.max()) < 16
    assert [S.codebook_usage(codes[:, l], 16) for l in range(2)] == [u[-1] for u in hist["usage"]]
    far = dict(kw, kmeans_init=False, init_scale=10.0)  # codes start far from the latents
    _, collapsed = S.train_rqvae(x, reset_dead=False, **far)
    assert max(u[-1] for u in collapsed["usage"]) <= 0.125
    _, reset_only = S.train_rqvae(x, reset_dead=True, **far)
    assert min(u[-1] for u in reset_only["usage"]) >= 0.5


def test_rqvae_quantizes_residuals_level_by_level():
    model = S.RQVAE(16, latent_dim=4, levels=3, codebook_size=5,
                    generator=torch.Generator().manual_seed(0))
    z = torch.randn(40, 4, generator=torch.Generator().manual_seed(1))
    codes, z_q, _, residuals = model.quantize(z)
    r = z.clone()
    for l, book in enumerate(model.codebooks.detach()):
        torch.testing.assert_close(residuals[l], r)
        expect = torch.stack([((r[i] - book) ** 2).sum(1).argmin() for i in range(40)])
        assert torch.equal(codes[:, l], expect)
        r = r - book[expect]
    torch.testing.assert_close(z - z_q, r)
    x = torch.randn(8, 16)
    assert torch.equal(model.encode(x), model.quantize(model.latent(x))[0])
    loss, recon, _, _ = model(x)  # straight-through: decodes z_q, but its gradient reaches z
    z_q = model.quantize(model.latent(x))[1]
    torch.testing.assert_close(recon, torch.nn.functional.mse_loss(model.decoder(z_q), x))
    recon.backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    grad = model.codebooks.grad  # only rq_loss moves the codes
    assert grad is None or grad.abs().sum() == 0


def test_add_disambiguation_counts_earlier_items_with_the_same_tuple():
    codes = torch.tensor([[1, 2], [1, 2], [3, 4], [1, 2], [3, 5], [3, 4]])
    out = S.add_disambiguation(codes)
    assert torch.equal(out[:, :2], codes)
    assert out[:, 2].tolist() == [0, 1, 0, 2, 0, 1]
    assert len(torch.unique(out, dim=0)) == 6
    free = S.add_disambiguation(torch.tensor([[0, 1], [1, 0], [1, 1]]))
    assert free[:, 2].tolist() == [0, 0, 0]


def test_diagnostics_against_hand_computed_values():
    assert S.code_entropy(torch.tensor([0, 0, 1, 1]), 4) == pytest.approx(1.0)
    assert S.code_entropy(torch.tensor([0, 0, 0, 1]), 4) == pytest.approx(
        -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert S.code_entropy(torch.tensor([2, 2, 2]), 4) == 0.0
    codes = torch.tensor([[1, 2], [1, 2], [3, 4], [1, 2], [3, 5]])
    d = S.id_diagnostics(codes, (4, 8))
    assert d["usage"] == [0.5, 3 / 8]
    assert d["entropy_bits"][0] == pytest.approx(-(0.6 * math.log2(0.6) + 0.4 * math.log2(0.4)))
    assert d["entropy_norm"][0] == pytest.approx(d["entropy_bits"][0] / 2)
    assert d["n_distinct"] == 3 and d["largest_group"] == 3
    assert d["unique_share"] == pytest.approx(2 / 5) and d["collision_rate"] == pytest.approx(3 / 5)


def test_random_and_lsh_ids_shapes_ranges_and_seeds():
    x = mixture(n=300)
    for make in (lambda g: S.random_ids(300, 3, 16, g), lambda g: S.lsh_ids(x, 3, 16, g)):
        a = make(torch.Generator().manual_seed(0))
        assert a.shape == (300, 3) and a.dtype == torch.long
        assert int(a.min()) == 0 and int(a.max()) == 15
        assert torch.equal(a, make(torch.Generator().manual_seed(0)))
        assert not torch.equal(a, make(torch.Generator().manual_seed(1)))
    lsh = S.lsh_ids(x, 2, 16, torch.Generator().manual_seed(0))
    planes = torch.randn(16, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bits = ((x.double() - x.double().mean(0)) @ planes > 0).long()  # (N, 2 levels * 4 bits)
    expect = [sum(int(bits[7, 4 * l + j]) << j for j in range(4)) for l in range(2)]
    assert lsh[7].tolist() == expect
    twins = S.lsh_ids(torch.cat([x, x[:10] + 1e-6]), 2, 16, torch.Generator().manual_seed(0))
    assert torch.equal(twins[300:], twins[:10])  # near-identical vectors, same codes
    with pytest.raises(ValueError, match="power of two"):
        S.lsh_ids(x, 2, 12, torch.Generator())


@pytest.mark.parametrize("method", ["rq-kmeans", "lsh", "random"])
def test_build_semantic_ids_gives_unique_padded_tables(method):
    emb = torch.cat([torch.zeros(1, 16), mixture(n=400)])  # (n_items + 1, D)
    ids = S.build_semantic_ids(emb, method, levels=2, codebook_size=8, seed=0)
    assert ids.codes.shape == (401, 3) and ids.method == method and ids.n_items == 400
    assert torch.equal(ids.codes[0], torch.zeros(3, dtype=torch.long))
    assert len(torch.unique(ids.codes[1:], dim=0)) == 400
    assert ids.sizes[:2] == (8, 8)
    assert ids.sizes[2] == S.id_diagnostics(ids.codes[1:, :2], (8, 8))["largest_group"]
    plain = S.build_semantic_ids(emb, method, levels=2, codebook_size=8, seed=0, disambiguate=False)
    assert torch.equal(plain.codes, ids.codes[:, :2]) and plain.sizes == (8, 8)


def test_build_semantic_ids_checks_its_inputs():
    assert S.build_semantic_ids(None, "random", 2, 8, n_items=50).codes.shape == (51, 3)
    with pytest.raises(ValueError, match="needs emb"):
        S.build_semantic_ids(None, "rq-kmeans", n_items=50)
    with pytest.raises(ValueError, match="method"):
        S.build_semantic_ids(torch.zeros(5, 4), "pq")
    with pytest.raises(ValueError, match="row 0"):
        S.SemanticIDs(torch.ones(3, 2, dtype=torch.long), (2, 2), "random")
