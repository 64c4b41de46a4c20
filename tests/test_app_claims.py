from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "claims.py")


def test_claims_page_waits_for_the_button_then_shows_verdicts():
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception
    assert not at.success and not at.error and not at.warning  # nothing trained before the click
    at.multiselect(key="claims_keys").set_value(["fig3", "swav_fixed"])
    at.slider(key="claims_seeds").set_value(1)
    at.toggle(key="claims_quick").set_value(True)
    at.button(key="claims_run").click().run()
    assert not at.exception
    verdicts = [m.value for m in (*at.success, *at.error, *at.warning)]
    assert len(verdicts) == 2
    assert all(v.split("**")[1] in ("held", "did not hold", "mixed") for v in verdicts)
    assert len(at.table) == 4  # two claims × two datasets
    assert any("simplified" in str(t.value) for t in at.table)


def test_claims_page_with_nothing_chosen_says_so():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.multiselect(key="claims_keys").set_value([]).run()
    assert not at.exception and "Pick at least one claim" in at.info[0].value
