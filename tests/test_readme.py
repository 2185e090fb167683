"""The README's scenario reference is the one generated from the schema, and its commands exist."""

from __future__ import annotations

from pathlib import Path

from himo.scenarios.reference import README_BEGIN, README_END, markdown_reference

README = Path(__file__).parent.parent / "README.md"


def test_readme_scenario_reference_matches_schema() -> None:
    text = README.read_text()
    assert README_BEGIN in text and README_END in text
    section = text.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert section.strip() == markdown_reference().strip(), "run `himo reference` and paste it into the README"


def test_readme_names_the_set_up_and_test_commands() -> None:
    text = README.read_text()
    assert "make test" in text and "make demo" in text
    assert "bash .ci/run" not in text or "make test" in (README.parent / ".ci" / "run").read_text()
