import pytest

from lab import claims as C
from lab.claims import CLAIMS, Numbers, run_claims


def n(center, knn=0.9):
    return Numbers(center, 0.0, knn, 0.0)


def claim(key):
    return next(c for c in CLAIMS if c.key == key)


def test_every_claim_uses_defaults_plus_one_knob():
    for c in CLAIMS:
        for label, method, params in c.variants:
            assert len(params) <= 1, (c.key, label)  # the one knob the claim is about, nothing tuned


@pytest.mark.parametrize("key, numbers, held", [
    ("fig4", {"simsiam": n(0.5), "no predictor": n(0.95), "no stop-gradient": n(0.99)}, True),
    ("fig4", {"simsiam": n(0.8), "no predictor": n(0.95), "no stop-gradient": n(0.99)}, False),
    ("fig4", {"simsiam": n(0.3), "no predictor": n(0.85), "no stop-gradient": n(0.99)}, False),
    ("fig4_knn", {"simsiam": n(0.3, 0.97), "no predictor": n(1, 0.7), "no stop-gradient": n(1, 0.8)}, True),
    ("fig4_knn", {"simsiam": n(0.3, 0.95), "no predictor": n(1, 0.7), "no stop-gradient": n(1, 0.9)}, False),
    ("fig3", {"simplified": n(0.1, 0.90), "simsiam": n(0.5, 0.91)}, True),
    ("fig3", {"simplified": n(0.1, 0.85), "simsiam": n(0.5, 0.91)}, False),
    ("fig3", {"simplified": n(0.3, 0.99), "simsiam": n(0.5, 0.91)}, False),
    ("byol_momentum", {"momentum 0.9": n(0.8), "momentum 0.99": n(0.6), "momentum 0.999": n(0.4)}, True),
    ("byol_momentum", {"momentum 0.9": n(0.5), "momentum 0.99": n(0.6), "momentum 0.999": n(0.4)}, False),
    ("swav_fixed", {"fixed prototypes": n(0.3), "no Sinkhorn": n(0.99), "swav": n(0.5)}, True),
    ("swav_fixed", {"fixed prototypes": n(0.95), "no Sinkhorn": n(0.99), "swav": n(0.5)}, False),
])
def test_checks_read_the_numbers(key, numbers, held):
    assert claim(key).check(numbers)[0] is held


def test_unknown_claim_lists_valid_keys():
    with pytest.raises(ValueError, match="fig4"):
        run_claims(["nope"])


def test_verdict_mixes_datasets():
    results = run_claims(["fig3"], seeds=1, epochs=2, datasets=("blobs", "moons"))
    (r,) = results
    held = [ok for ok, _ in r.per_dataset.values()]
    expected = "held" if all(held) else "did not hold" if not any(held) else "mixed"
    assert r.verdict == expected and set(r.numbers) == {"blobs", "moons"}
    assert "simplified" in C.results_table(results)


@pytest.fixture(scope="module")
def fig3_fig4():
    return {r.claim.key: r for r in run_claims(["fig3", "fig4", "fig4_knn"], seeds=5)}


def test_fig4_ablations_collapse_and_simsiam_does_not(fig3_fig4):
    # What the lab measures at the defaults (seeds 0-4): both ablations collapse on both datasets and
    # standard SimSiam does not. (On moons its center drifts to 0.7-0.8, near the paper's 0.2 gap, and
    # whether a 5-seed mean meets the gap depends on float rounding: README, "Claims".)
    r = fig3_fig4["fig4"]
    for ds in ("blobs", "moons"):
        assert r.numbers[ds]["no predictor"].center_norm > 0.9, C.results_table([r])
        assert r.numbers[ds]["no stop-gradient"].center_norm > 0.9, C.results_table([r])
        assert r.numbers[ds]["simsiam"].center_norm < 0.9, C.results_table([r])
    assert r.per_dataset["blobs"][0], C.results_table([r])


def test_fig3_simplified_keeps_the_center_small(fig3_fig4):
    # On moons a few seeds of the simplified method collapse (2-3 of seeds 0-19, with either the fused
    # step's or autograd's float rounding; which ones depends on the rounding), and seed 3 is one of them
    # with the fused step: so the 5-seed verdict there is not asserted, only that simplified's center
    # stays well below SimSiam's (README, "Claims").
    r = fig3_fig4["fig3"]
    assert r.per_dataset["blobs"][0], C.results_table([r])
    assert r.numbers["blobs"]["simplified"].center_norm < 0.2, C.results_table([r])
    moons = r.numbers["moons"]
    assert moons["simplified"].center_norm < moons["simsiam"].center_norm - 0.2, C.results_table([r])


def test_fig4_knn_gap_is_reported_with_numbers(fig3_fig4):
    # At D = 3 the collapsed ablations keep a good kNN score on blobs (README): the lab says so.
    r = fig3_fig4["fig4_knn"]
    assert r.verdict in ("held", "did not hold", "mixed")
    assert set(r.numbers["blobs"]) == {"simsiam", "no predictor", "no stop-gradient"}
