"""Toy datasets (lab.data.toy): every dataset in DATASETS, 3 balanced classes, standardised, held-out split."""
import pytest
import torch

from lab.data.toy import DATASETS, N_CLASSES, make_toy


def test_the_datasets_the_issue_asks_for_are_there():
    assert {"blobs", "moons"} <= set(DATASETS)
    assert len(DATASETS) >= 3
    dims = {name: make_toy(name, n_train=5, n_test=2).in_dim for name in DATASETS}
    assert dims["blobs"] == 2 and dims["moons"] == 2
    assert 3 in dims.values(), "a 3-class set in 3-D for the sphere view"


@pytest.mark.parametrize("name", list(DATASETS))
def test_shapes_and_balanced_classes(name):
    data = make_toy(name, seed=0, n_train=40, n_test=10)
    d = data.in_dim
    assert d in (2, 3)
    assert data.x_train.shape == (3 * 40, d) and data.y_train.shape == (3 * 40,)
    assert data.x_test.shape == (3 * 10, d) and data.y_test.shape == (3 * 10,)
    assert N_CLASSES == 3
    assert torch.bincount(data.y_train).tolist() == [40, 40, 40]
    assert torch.bincount(data.y_test).tolist() == [10, 10, 10]
    assert data.x_train.dtype == torch.float32 and not data.y_train.is_floating_point()
    assert torch.isfinite(data.x_train).all() and torch.isfinite(data.x_test).all()
    assert data.name == name


@pytest.mark.parametrize("name", list(DATASETS))
def test_standardised(name):
    data = make_toy(name, seed=1)
    x = torch.cat([data.x_train, data.x_test])
    assert torch.allclose(x.mean(0), torch.zeros(data.in_dim), atol=1e-5)
    assert torch.allclose(x.std(0), torch.ones(data.in_dim), atol=1e-4)
    # the training part alone is close to standardised as well
    assert data.x_train.mean(0).abs().max() < 0.15
    assert (data.x_train.std(0) - 1).abs().max() < 0.15


@pytest.mark.parametrize("name", list(DATASETS))
def test_held_out_points_are_disjoint_from_training(name):
    data = make_toy(name, seed=2, n_train=50, n_test=20)
    dist = torch.cdist(data.x_test, data.x_train)
    assert dist.min() > 0
    # and no point is repeated inside either part
    assert len(torch.unique(data.x_train, dim=0)) == len(data.x_train)
    assert len(torch.unique(data.x_test, dim=0)) == len(data.x_test)


@pytest.mark.parametrize("name", list(DATASETS))
def test_classes_are_mostly_separable(name):
    # Each dataset is meant to be learnable: a 1-NN on the raw inputs gets the held-out points right.
    data = make_toy(name, seed=0)
    nearest = torch.cdist(data.x_test, data.x_train).argmin(1)
    assert (data.y_train[nearest] == data.y_test).float().mean() > 0.9


@pytest.mark.parametrize("name", list(DATASETS))
def test_seeded(name):
    a, b, c = make_toy(name, seed=3), make_toy(name, seed=3), make_toy(name, seed=4)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_test, c.x_test)


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(ValueError) as e:
        make_toy("spirals")
    msg = str(e.value)
    assert "spirals" in msg and all(name in msg for name in DATASETS)


@pytest.mark.parametrize("n_train, n_test", [(1, 10), (10, 0), (0, 0)])
def test_bad_sizes_fail(n_train, n_test):
    with pytest.raises(ValueError, match="n_train"):
        make_toy("blobs", n_train=n_train, n_test=n_test)
