import math

import pytest
import torch

from lab.core import geometry as geo


def unit(*v):
    t = torch.tensor(v, dtype=torch.float32)
    return t / t.norm()


def test_antipodal_points_have_zero_center():
    z = torch.stack([unit(1, 0), unit(-1, 0), unit(0, 1), unit(0, -1)])
    assert geo.center_norm(z).item() == pytest.approx(0.0, abs=1e-7)
    assert geo.residual_norm(z).item() == pytest.approx(1.0)


def test_identical_points_have_unit_center_and_no_residual():
    z = unit(0.6, 0.8).repeat(5, 1)
    assert geo.center_norm(z).item() == pytest.approx(1.0)
    assert geo.residual_norm(z).item() == pytest.approx(0.0, abs=1e-7)
    assert torch.allclose(geo.residuals(z), torch.zeros_like(z))


def test_two_orthogonal_points():
    z = torch.stack([unit(1, 0), unit(0, 1)])
    assert geo.center_norm(z).item() == pytest.approx(math.sqrt(0.5))
    assert torch.allclose(geo.center_vector(z), torch.tensor([0.5, 0.5]))
    assert geo.center_angle_deg(geo.center_vector(z)).item() == pytest.approx(45.0)


def test_center_norm_and_variance_add_to_one():
    # ‖s‖² + Σ_d Var(z_d) = 1 for unit vectors
    z = geo.normalize(torch.randn(500, 3, generator=torch.Generator().manual_seed(0)) + torch.tensor([1.0, 0, 0]))
    total = geo.center_norm(z) ** 2 + z.var(dim=0, unbiased=False).sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_batch_center_uses_only_the_batch():
    z = torch.stack([unit(1, 0), unit(1, 0), unit(-1, 0), unit(0, 1)])
    assert torch.allclose(geo.batch_center(z, torch.tensor([0, 1])), unit(1, 0))
    assert geo.batch_center(z, torch.tensor([0, 2])).norm().item() == pytest.approx(0.0, abs=1e-7)


def test_augmented_center_averages_points_and_augmentations():
    z_aug = torch.stack([torch.stack([unit(1, 0), unit(0, 1)]), torch.stack([unit(-1, 0), unit(0, 1)])])  # (2, 2, 2)
    assert torch.allclose(geo.augmented_center(z_aug), torch.tensor([0.0, 0.5]))


def test_center_angle_quadrants_and_angle_between():
    s = torch.stack([unit(1, 0), unit(0, 1), unit(-1, 0), unit(0, -1)])
    assert geo.center_angle_deg(s).tolist() == pytest.approx([0, 90, 180, -90])
    assert geo.angle_between_deg(unit(1, 0), unit(0, 1)).item() == pytest.approx(90.0, abs=1e-3)
    assert geo.angle_between_deg(unit(1, 1), unit(-1, -1)).item() == pytest.approx(180.0, abs=1e-3)


def test_gradient_split_recovers_eq4():
    # Negative gradient of -<z, z_ω> on each sample is μ_z = s + (μ_z - s).
    z_aug = geo.normalize(torch.randn(7, 4, 3, generator=torch.Generator().manual_seed(1)))
    center, residual = geo.gradient_split(z_aug)
    mu = z_aug.mean(1)
    assert torch.allclose(center.unsqueeze(0) + residual, mu, atol=1e-6)
    assert torch.allclose(residual.mean(0), torch.zeros(3), atol=1e-6)  # residuals cancel over the data
    assert torch.allclose(center, geo.augmented_center(z_aug))


def test_leading_dimensions_pass_through():
    z = geo.normalize(torch.randn(5, 3, 10, 2))
    assert geo.center_norm(z).shape == (5, 3)
    assert geo.residual_norm(z).shape == (5, 3)
    assert geo.z_std(z).shape == (5, 3)


def test_healthy_z_std_matches_uniform_features():
    t = torch.linspace(0, 2 * math.pi, 10_001)[:-1]
    z = torch.stack([t.cos(), t.sin()], 1)
    assert geo.z_std(z).item() == pytest.approx(geo.healthy_z_std(2), rel=1e-3)
