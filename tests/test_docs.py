"""The documentation cannot rot: its generated references match the code, the site builds with every link and
anchor resolved, and each tutorial's files and commands run as written."""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from himo.scenarios.cli import main
from himo.scenarios.cli_reference import markdown_cli_reference
from himo.scenarios.reference import markdown_reference

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
TUTORIALS = DOCS / "tutorials"
# A tutorial's commands train for the budget its scenario sets; the suite proves they run end to end on a sliver.
SHORT_TRAINING = ["--set", "train.frames=512", "--set", "train.frames_per_batch=256", "--quiet"]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TITLE = re.compile(r'title="([^"]+)"')


def test_scenario_reference_page_is_the_generated_one() -> None:
    page = (DOCS / "reference" / "scenario.md").read_text()
    assert page == markdown_reference(), "run `himo reference > docs/reference/scenario.md`"


def test_cli_reference_page_is_the_generated_one() -> None:
    page = (DOCS / "reference" / "cli.md").read_text()
    assert page == markdown_cli_reference(), "run `himo reference --cli > docs/reference/cli.md`"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "HierarchicalPolicy" in api and "in a new run folder" in api, "the API page renders the docstrings"
    assert (tmp_path / "site" / "results" / "beacon_ablation" / "ablation.png").exists()


def fenced_blocks(page: Path) -> list[tuple[str, str | None, str]]:
    """``(language, title, code)`` of each fenced block of a Markdown page, in order."""
    return [
        (language, (TITLE.search(info) or [None, None])[1], code)
        for language, info, code in FENCE.findall(page.read_text())
    ]


def write_tutorial_files(page: Path, folder: Path) -> None:
    for _, title, code in fenced_blocks(page):
        if title is not None:
            (folder / title).write_text(code)


def run_tutorial_commands(page: Path, folder: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Run each ``himo`` command of the page's bash blocks in ``folder``; return each command's output."""
    outputs: dict[str, str] = {}
    for language, _, code in fenced_blocks(page):
        if language != "bash":
            continue
        for line in code.splitlines():
            if not line.startswith("himo "):
                continue
            argv = []
            for word in shlex.split(line)[1:]:
                matches = sorted(glob.glob(word, root_dir=folder)) if "*" in word else [word]
                assert matches, f"{line!r}: nothing matches {word}"
                argv += matches
            if argv[0] == "train":
                argv += SHORT_TRAINING
            code_returned = main(argv)
            captured = capsys.readouterr()
            assert code_returned == 0, f"{line!r} failed:\n{captured.out}\n{captured.err}"
            outputs[argv[0]] = captured.out
    return outputs


def shown_inspection(page: Path) -> list[str]:
    """The lines of the page's ``himo inspect`` output that describe the env (its random return varies)."""
    text_blocks = [code for language, _, code in fenced_blocks(page) if language == "text"]
    return [line for line in text_blocks[0].splitlines() if not line.startswith("random policy")]


@pytest.fixture
def tutorial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder to follow a tutorial in; the import path and modules it adds are undone afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in ("corridor", "corridor_team"):
        sys.modules.pop(name, None)


# Both tutorials import corridor.py, which registers its env id each time.
@pytest.mark.filterwarnings("ignore:.*Overriding environment Corridor-v0")
@pytest.mark.parametrize("name", ["own-gymnasium-env", "own-pettingzoo-env"])
def test_a_tutorial_runs_as_written(name: str, tutorial_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = TUTORIALS / f"{name}.md"
    # The PettingZoo tutorial builds on the Gymnasium one's files.
    write_tutorial_files(TUTORIALS / "own-gymnasium-env.md", tutorial_folder)
    write_tutorial_files(page, tutorial_folder)
    outputs = run_tutorial_commands(page, tutorial_folder, capsys)
    assert set(outputs) >= {"inspect", "validate", "train", "eval"}
    for line in shown_inspection(page):
        assert line in outputs["inspect"], f"the page shows {line!r}; himo inspect printed:\n{outputs['inspect']}"
    assert "success rate" in outputs["eval"]
