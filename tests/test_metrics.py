"""Representation metrics (lab.core.metrics) on hand-built features, with and without the seed dimension K."""
import math

import pytest
import torch

from lab.core import geometry as geo
from lab.core import metrics as M


def clusters(n_per=30, d=2, spread=0.05, seed=0, k=1):
    """Three tight, well-separated clusters on the unit circle/sphere: (K, 3n, d) normalised, labels (3n,)."""
    g = torch.Generator().manual_seed(seed)
    angles = torch.tensor([0.0, 2.0, 4.0])
    centers = torch.zeros(3, d)
    centers[:, 0], centers[:, 1] = angles.cos(), angles.sin()
    y = torch.arange(3).repeat_interleave(n_per)
    z = geo.normalize(centers[y].expand(k, -1, -1) + spread * torch.randn(k, len(y), d, generator=g))
    return z, y


def collapsed(n, d=2):
    return geo.normalize(torch.ones(1, n, d))


def test_knn_and_linear_accuracy_are_perfect_on_separable_clusters():
    train, y = clusters(seed=0)
    test, yt = clusters(seed=1)
    assert M.knn_accuracy(train, y, test, yt).tolist() == [1.0]
    assert M.linear_accuracy(train, y, test, yt).tolist() == [1.0]


def test_knn_and_linear_accuracy_are_at_chance_on_collapsed_features():
    _, y = clusters()
    _, yt = clusters(seed=1)
    z, zt = collapsed(len(y)), collapsed(len(yt))
    assert M.knn_accuracy(z, y, zt, yt).item() <= 0.5
    assert M.linear_accuracy(z, y, zt, yt).item() <= 0.5


def test_linear_accuracy_sees_what_knn_sees_in_3d():
    train, y = clusters(d=3)
    test, yt = clusters(d=3, seed=2)
    assert M.linear_accuracy(train, y, test, yt).item() == 1.0
    assert M.knn_accuracy(train, y, test, yt, k=5).item() == 1.0


def test_accuracies_take_a_seed_dimension_with_per_seed_labels():
    # Seed 0 separable, seed 1 collapsed, seed 2 separable with its labels permuted per seed.
    train, y = clusters(k=1)
    test, yt = clusters(k=1, seed=1)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(3))
    perm_t = torch.randperm(len(yt), generator=torch.Generator().manual_seed(4))
    bank = torch.cat([train, collapsed(len(y)), train[:, perm]])
    query = torch.cat([test, collapsed(len(yt)), test[:, perm_t]])
    ys = torch.stack([y, y, y[perm]])
    yts = torch.stack([yt, yt, yt[perm_t]])
    for fn in (M.knn_accuracy, M.linear_accuracy):
        acc = fn(bank, ys, query, yts)
        assert acc.shape == (3,)
        assert acc[0] == 1.0 and acc[2] == 1.0 and acc[1] <= 0.5, fn.__name__
    # and with shared (N,) labels the leading dimension broadcasts
    acc = M.knn_accuracy(torch.cat([train, train]), y, torch.cat([test, test]), yt)
    assert acc.tolist() == [1.0, 1.0]


def test_knn_uses_the_labels_not_the_order():
    train, y = clusters()
    test, yt = clusters(seed=1)
    wrong = (y + 1) % 3  # every bank label shifted: kNN must follow them
    assert M.knn_accuracy(train, wrong, test, yt).item() == 0.0
    assert M.knn_accuracy(train, wrong, test, (yt + 1) % 3).item() == 1.0


@pytest.mark.parametrize("shape,k", [((10, 30, 600), 20), ((3, 7, 601), 20), ((5, 50), 3), ((2, 4, 100), 100),
                                     ((2, 4, 20), 1), ((4, 9, 1000), 7), ((2, 3), 2)])
def test_top_k_last_finds_topk_values_and_their_indices(shape, k):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(k))
    values, idx = M.top_k_last(x, k)
    ref_values, ref_idx = x.topk(k, dim=-1)
    assert torch.equal(values.sort(-1, descending=True).values, ref_values)
    assert torch.equal(idx.sort(-1).values, ref_idx.sort(-1).values)  # no ties in random data: the same set
    assert torch.equal(torch.gather(x, -1, idx), values)


def test_top_k_last_with_ties_picks_k_distinct_elements_of_the_top_values():
    # Ties across block boundaries: the block maxima tie too, and any k of the tied elements are a top-k.
    x = torch.zeros(4, 600)
    x[:, ::7] = 1.0  # 86 tied maxima per row
    x[1] = 1.0  # a whole row tied, as in a collapsed model
    values, idx = M.top_k_last(x, 20)
    assert torch.equal(values, torch.ones(4, 20))
    assert all(len(set(row.tolist())) == 20 for row in idx)
    assert torch.equal(torch.gather(x, -1, idx), values)


def test_knn_accuracy_equals_a_plain_topk_vote():
    g = torch.Generator().manual_seed(2)
    bank, query = geo.normalize(torch.randn(4, 600, 3, generator=g)), geo.normalize(torch.randn(4, 300, 3, generator=g))
    bank_y, query_y = torch.randint(0, 3, (4, 600), generator=g), torch.randint(0, 3, (4, 300), generator=g)
    sim = torch.bmm(query, bank.transpose(1, 2))
    top, idx = sim.topk(20, dim=-1)
    votes = torch.zeros(4, 300, 3).scatter_add_(-1, torch.gather(bank_y[:, None].expand(-1, 300, -1), 2, idx),
                                                (top / 0.07).exp())
    plain = (votes.argmax(-1) == query_y).float().mean(-1)
    assert torch.equal(M.knn_accuracy(bank, bank_y, query, query_y), plain)
    assert 0.2 < plain.mean() < 0.5  # random labels: near chance, so the check is not trivially 1 or 0


def test_knn_accuracy_in_chunks_equals_all_at_once():
    g = torch.Generator().manual_seed(5)
    bank, query = geo.normalize(torch.randn(3, 400, 4, generator=g)), geo.normalize(torch.randn(3, 130, 4, generator=g))
    bank_y, query_y = torch.randint(0, 4, (400,), generator=g), torch.randint(0, 4, (130,), generator=g)
    whole = M.knn_accuracy(bank, bank_y, query, query_y)
    for chunk in (1, 32, 129, 130, 1000):
        assert torch.allclose(M.knn_accuracy(bank, bank_y, query, query_y, chunk=chunk), whole, atol=1e-6), chunk


def test_knn_accuracy_makes_every_tensor_on_the_device_of_its_inputs():
    """The meta device stands in for CUDA: a tensor made on the CPU beside meta inputs fails the same way."""
    bank, query = torch.empty(2, 600, 8, device="meta"), torch.empty(2, 50, 8, device="meta")
    labels = torch.empty(600, dtype=torch.int64, device="meta")
    acc = M.knn_accuracy(bank, labels, query, labels[:50], n_classes=3, chunk=16)
    assert acc.device.type == "meta" and acc.shape == (2,)
    values, idx = M.top_k_last(torch.empty(2, 600, device="meta"), 20)
    assert values.device.type == idx.device.type == "meta" and idx.shape == (2, 20)


def test_alignment_is_zero_for_identical_views_and_grows_with_distance():
    z, _ = clusters(k=2)
    assert torch.allclose(M.alignment(z, z), torch.zeros(2))
    assert torch.allclose(M.alignment(z, -z), torch.full((2,), 4.0), atol=1e-5)  # antipodal: ‖2z‖²
    assert M.alignment(z, z.roll(1, dims=1)).shape == (2,)


def test_uniformity_is_zero_when_collapsed_and_negative_when_spread():
    assert M.uniformity(collapsed(50)).item() == pytest.approx(0.0, abs=1e-6)
    angles = torch.arange(60) * 2 * math.pi / 60
    circle = torch.stack([angles.cos(), angles.sin()], -1).unsqueeze(0)
    u = M.uniformity(circle).item()
    assert u < -1.0
    tight, _ = clusters(spread=0.01)
    assert u < M.uniformity(tight).item() < 0  # three clusters: less uniform than the whole circle
    # batched: one value per seed
    both = torch.cat([circle, collapsed(60)])
    got = M.uniformity(both)
    assert got.shape == (2,) and got[0].item() == pytest.approx(u, rel=1e-5) and abs(got[1].item()) < 1e-6


def test_uniformity_on_the_circle_matches_the_closed_form():
    # Points evenly on the circle: ‖z_i − z_j‖² = 2 − 2cos(Δθ); check against a direct double loop.
    n = 12
    angles = torch.arange(n) * 2 * math.pi / n
    z = torch.stack([angles.cos(), angles.sin()], -1).double()
    terms = [math.exp(-2 * (z[i] - z[j]).square().sum().item()) for i in range(n) for j in range(n) if i != j]
    expected = math.log(sum(terms) / len(terms))
    assert M.uniformity(z.unsqueeze(0)).item() == pytest.approx(expected, rel=1e-6)


def test_effective_rank_is_one_on_a_line_and_d_when_isotropic():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(1, 500, 1, generator=g)
    line = t * torch.tensor([1.0, 2.0, -1.0])
    assert M.effective_rank(line).item() == pytest.approx(1.0, abs=1e-3)
    for d in (2, 3, 8):
        iso = torch.randn(1, 5000, d, generator=g)
        assert M.effective_rank(iso).item() == pytest.approx(d, rel=0.03)
    both = torch.cat([line, torch.randn(1, 500, 3, generator=g)])
    er = M.effective_rank(both)
    assert er.shape == (2,) and er[0] < 1.01 and er[1] > 2.8


def test_effective_rank_of_collapsed_features_is_finite():
    er = M.effective_rank(collapsed(20, d=3))
    assert torch.isfinite(er).all() and 1.0 - 1e-6 <= er.item() <= 3.0 + 1e-6
