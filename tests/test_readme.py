"""The README names the set-up and test commands, and every page it links exists."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"
LINK = re.compile(r"\]\(([^)#]+)(?:#[^)]*)?\)")


def test_readme_names_the_set_up_and_test_commands() -> None:
    text = README.read_text()
    assert "make test" in text and "make demo" in text
    assert "bash .ci/run" not in text or "make test" in (README.parent / ".ci" / "run").read_text()


def test_readme_links_resolve() -> None:
    targets = LINK.findall(README.read_text())
    assert len(targets) >= 10
    missing = [target for target in targets if not (README.parent / target).exists()]
    assert not missing, f"the README links files that do not exist: {missing}"
