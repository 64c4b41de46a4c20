import json
from pathlib import Path

import pytest

from lab import claims as C
from lab.claims import CLAIMS, SeedNumbers, run_claims, toy_results_json
from lab.core.experiments import combined_verdict


def n(center, knn=0.9):
    return SeedNumbers(center, knn)


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
    held = [d.ok for d in r.per_dataset.values()]
    expected = "held" if all(held) else "did not hold" if not any(held) else "mixed"
    assert r.verdict == expected and set(r.numbers) == {"blobs", "moons"}
    assert "simplified" in C.results_table(results)


def test_a_claim_is_judged_seed_by_seed_and_counts_them():
    """A claim that holds in some seeds only is mixed on that data set, with the count; means decide nothing."""
    c = claim("swav_fixed")
    split = {0: {"fixed prototypes": n(0.3), "no Sinkhorn": n(0.99), "swav": n(0.5)},
             1: {"fixed prototypes": n(0.95), "no Sinkhorn": n(0.99), "swav": n(0.5)},
             2: {"fixed prototypes": n(0.2), "no Sinkhorn": n(0.98), "swav": n(0.5)}}
    v = c.judge(split)
    assert (v["verdict"], v["held"], v["n"], v["per_seed"]) == ("mixed", 2, 3, {0: True, 1: False, 2: True})
    assert c.judge({0: split[0], 2: split[2]})["verdict"] == "held"
    assert c.judge({1: split[1]})["verdict"] == "did not hold"
    assert c.judge({})["verdict"] == "no runs"
    assert combined_verdict(["held", "held"]) == "held" and combined_verdict(["held", "mixed"]) == "mixed"
    assert combined_verdict(["did not hold", "did not hold"]) == "did not hold"
    assert combined_verdict(["held", "did not hold"]) == "mixed"


def test_the_results_contract_holds_every_seed_and_the_counts(tmp_path):
    results = run_claims(["fig4", "swav_fixed"], seeds=3, epochs=3)
    data = toy_results_json(results, seeds=3, epochs=3)
    assert {"made", "machine", "commit", "seeds", "epochs", "threshold", "verdict_rule", "results"} <= set(data)
    for r, result in zip(data["results"], results):
        assert r["verdict"] == result.verdict and r["rule"] and r["metrics"]
        for ds, d in r["datasets"].items():
            # Every seed is judged, or untestable because its control collapsed, never both.
            assert d["n"] + len(d["untestable"]) == 3 and 0 <= d["held"] <= d["n"] == len(d["per_seed_held"])
            assert d["held"] == sum(d["per_seed_held"].values())
            assert d["control"] == claim(r["claim"]).rule.control and set(d["control_health"]) == {"0", "1", "2"}
            for seed, health in d["control_health"].items():
                assert health["healthy"] is (seed not in d["untestable"]) and health["why"]
            for label, per in d["per_seed"].items():
                assert list(per) == ["0", "1", "2"]
                finals = [v["center_norm"] for v in per.values()]
                run_finals = result.seeds[ds][label]
                assert finals == [run_finals[s].center_norm for s in (0, 1, 2)]
                above = sum(v > C.COLLAPSED for v in finals)
                assert d["numbers"][label]["above"] == above and d["numbers"][label]["seeds"] == 3
                assert abs(d["numbers"][label]["center_norm"] - sum(finals) / 3) < 1e-6
            # The verdict follows the per-seed rule on exactly these numbers.
            for seed, ok in d["per_seed_held"].items():  # (testable seeds only)
                one = {label: SeedNumbers(**per[seed]) for label, per in d["per_seed"].items()}
                assert claim(r["claim"]).check(one)[0] is ok
    (tmp_path / "claims.json").write_text(json.dumps(data))
    assert C.read_toy_results(tmp_path / "claims.json") == data  # the page's reader takes what the CLI writes
    del data["results"][0]["datasets"]["blobs"]["per_seed"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert C.read_toy_results(tmp_path / "old.json") is None  # results without seed counts are not shown


@pytest.fixture(scope="module")
def fig3_fig4():
    return {r.claim.key: r for r in run_claims(["fig3", "fig4", "fig4_knn"], seeds=5)}


def test_fig4_ablations_collapse_and_simsiam_does_not(fig3_fig4):
    # What the lab measures at the defaults (seeds 0-4): both ablations collapse on both datasets and
    # standard SimSiam does not. (On moons its center drifts to 0.7-0.8, near the paper's 0.2 gap, and
    # whether a 5-seed mean meets the gap depends on float rounding: docs/claims.md.)
    r = fig3_fig4["fig4"]
    for ds in ("blobs", "moons"):
        assert r.numbers[ds]["no predictor"].center_norm > 0.9, C.results_table([r])
        assert r.numbers[ds]["no stop-gradient"].center_norm > 0.9, C.results_table([r])
        assert r.numbers[ds]["simsiam"].center_norm < 0.9, C.results_table([r])
    assert r.per_dataset["blobs"].ok, C.results_table([r])


def test_fig3_simplified_keeps_the_center_small(fig3_fig4):
    # On moons a few seeds of the simplified method collapse (2-3 of seeds 0-19, with either the fused
    # step's or autograd's float rounding; which ones depends on the rounding), and seed 3 is one of them
    # with the fused step: so the 5-seed verdict there is not asserted, only that simplified's center
    # stays well below SimSiam's (docs/claims.md).
    r = fig3_fig4["fig3"]
    assert r.per_dataset["blobs"].ok, C.results_table([r])
    assert r.numbers["blobs"]["simplified"].center_norm < 0.2, C.results_table([r])
    moons = r.numbers["moons"]
    assert moons["simplified"].center_norm < moons["simsiam"].center_norm - 0.2, C.results_table([r])


def test_fig4_knn_gap_is_reported_with_numbers(fig3_fig4):
    # At D = 3 the collapsed ablations keep a good kNN score on blobs (docs/claims.md): the lab says so.
    r = fig3_fig4["fig4_knn"]
    assert r.verdict in ("held", "did not hold", "mixed")
    assert set(r.numbers["blobs"]) == {"simsiam", "no predictor", "no stop-gradient"}


def test_the_docs_claims_table_is_the_shipped_results():
    """docs/claims.md's table is generated from assets/toy_claims.json (python -m lab claims --markdown), not typed."""
    shipped = C.read_toy_results()
    assert shipped is not None
    doc = (Path(__file__).resolve().parents[1] / "docs" / "claims.md").read_text()
    assert C.claims_markdown(shipped) in doc
    for r in shipped["results"]:  # and the shipped verdicts follow the rule on the shipped per-seed values
        for d in r["datasets"].values():
            for seed, ok in d["per_seed_held"].items():  # (testable seeds only)
                one = {label: SeedNumbers(**per[seed]) for label, per in d["per_seed"].items()}
                assert claim(r["claim"]).check(one)[0] is ok, (r["claim"], seed)
            held = sum(d["per_seed_held"].values())
            assert d["verdict"] == ("held" if held == d["n"] else "did not hold" if held == 0 else "mixed")
        assert r["verdict"] == combined_verdict([d["verdict"] for d in r["datasets"].values()])
