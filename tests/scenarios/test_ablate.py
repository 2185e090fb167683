"""``himo ablate`` end to end on a tiny budget: every variant trains and is evaluated; the table, JSON and figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from himo.scenarios.ablation import ablation_variants, flat_overrides
from himo.scenarios.cli import main
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load

TINY = ["env.num_envs=4", "env.kwargs.max_steps=8", "train.frames_per_batch=256", "algorithm.workers.epochs=1",
        "algorithm.manager.epochs=1"]
TINY_SETTINGS = [argument for override in TINY for argument in ("--set", override)]
"""``TINY`` as ``--set`` arguments of ``himo ablate``."""


def tiny_ablate(out: Path) -> list[str]:
    """``himo ablate beacon`` on the tiny budget (256 frames, seed 0, 2 episodes) into ``out``; the options after
    ``--out`` are the ``TINY`` settings."""
    return ["ablate", "beacon", "--frames", "256", "--seeds", "0", "--episodes", "2", "--out", str(out), *TINY_SETTINGS]


def test_ablate_writes_the_table_the_json_and_the_figure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["ablate", "beacon", "--frames", "512", "--seeds", "0", "--episodes", "4", "--out", str(tmp_path), *TINY_SETTINGS]
    )
    assert code == 0
    summary = json.loads((tmp_path / "ablation.json").read_text())
    assert summary["scenario"] == "beacon" and summary["frames"] == 512
    assert list(summary["variants"]) == ["hierarchical", "flat", "no_image", "no_text", "no_audio"]
    for variant in summary["variants"].values():
        assert len(variant["greedy_return"]) == 1 and len(variant["success_rate"]) == 1
        assert 0.0 <= variant["success_rate"][0] <= 1.0  # the built-in world reports its own success
    table = (tmp_path / "ablation.md").read_text()
    assert table.count("\n| ") == 6 and "| no_audio |" in table
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "no_text seed 0: greedy return" in capsys.readouterr().out


def test_each_modality_is_removed_with_its_workers_and_the_flat_variant_has_one_worker() -> None:
    base = load("beacon", ["manager.goal={size: 4}", "workers.text.modalities=[text, audio]"])
    variants = ablation_variants(base)
    no_audio = load("beacon", ["manager.goal={size: 4}", "workers.text.modalities=[text, audio]", *variants["no_audio"]])
    assert list(no_audio.modalities) == ["image", "text"] and list(no_audio.workers) == ["image"]
    flat = load("beacon", variants["flat"])
    assert list(flat.workers) == ["flat"] and flat.manager.goal is None
    assert set(flat.worker_modalities("flat")) == {"image", "text", "audio"}


def test_a_view_conditioned_on_the_removed_modality_stays_unconditioned() -> None:
    conditioned = ["modalities.target={key: image, encoder: grid, condition: text}", "workers.grounded.modalities=[target]"]
    variants = ablation_variants(load("babyai-gotolocal", conditioned))
    no_text = load("babyai-gotolocal", [*conditioned, *variants["no_text"]])
    assert list(no_text.modalities) == ["image", "target"] and no_text.modalities["target"].condition is None
    assert list(no_text.workers) == ["image", "grounded"]
    no_image = load("babyai-gotolocal", [*conditioned, *variants["no_image"]])
    assert no_image.modalities["target"].condition == "text" and list(no_image.workers) == ["grounded"]


def test_a_modality_every_worker_needs_cannot_be_removed() -> None:
    with pytest.raises(ScenarioError, match="every worker reads modality 'vector'"):
        ablation_variants(load("cartpole"))


def test_ablate_in_two_processes_gives_every_run(tmp_path: Path) -> None:
    code = main(["ablate", "beacon", "--frames", "256", "--seeds", "0", "--episodes", "2", "--jobs", "2",
                 "--out", str(tmp_path), *TINY_SETTINGS])
    assert code == 0
    summary = json.loads((tmp_path / "ablation.json").read_text())
    assert all(len(variant["greedy_return"]) == 1 for variant in summary["variants"].values())
    assert len(list((tmp_path / "runs").glob("*/beacon-*"))) == 5


def test_the_flat_workers_reward_mix_can_be_given(tmp_path: Path) -> None:
    variants = ablation_variants(load("beacon"), {"env": 1.0, "approach_sound": 0.5})
    flat = load("beacon", variants["flat"])
    assert dict(flat.workers["flat"].reward) == {"env": 1.0, "approach_sound": 0.5}
    assert main(["ablate", "beacon", "--flat-reward", "[1, 2]", "--out", str(tmp_path)]) == 2


def test_ablate_reads_the_runs_it_finished_before_and_trains_only_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    common = tiny_ablate(tmp_path)
    assert main([*common, "--variants", "flat"]) == 0
    assert list(json.loads((tmp_path / "ablation.json").read_text())["variants"]) == ["flat"]
    flat_runs = list((tmp_path / "runs" / "flat").glob("beacon-*"))
    first = json.loads((tmp_path / "runs" / "flat" / "seed-0.json").read_text())["result"]
    capsys.readouterr()

    assert main([*common, "--variants", "flat", "hierarchical"]) == 0
    output = capsys.readouterr().out
    assert "flat seed 0: greedy return" in output and "finished earlier" in output
    assert list((tmp_path / "runs" / "flat").glob("beacon-*")) == flat_runs  # not trained again
    summary = json.loads((tmp_path / "ablation.json").read_text())
    assert list(summary["variants"]) == ["hierarchical", "flat"]
    assert summary["variants"]["flat"]["greedy_return"] == [first["greedy_return"]]

    # A folder moved elsewhere keeps its finished runs.
    moved = tmp_path.parent / f"{tmp_path.name}-moved"
    shutil.copytree(tmp_path, moved)
    assert main([*common[:8], "--out", str(moved), *TINY_SETTINGS, "--variants", "flat"]) == 0
    assert "finished earlier" in capsys.readouterr().out

    # A run saved before fields were added to the schema (here train.backend and the tune section) still counts:
    # the new fields read as their defaults, and the tune section does not bear on a run.
    saved_file = moved / "runs" / "flat" / "seed-0.json"
    saved = json.loads(saved_file.read_text())
    del saved["settings"]["scenario"]["train"]["backend"], saved["settings"]["scenario"]["tune"]
    saved_file.write_text(json.dumps(saved))
    assert main([*common[:8], "--out", str(moved), *TINY_SETTINGS, "--variants", "flat"]) == 0
    assert "finished earlier" in capsys.readouterr().out
    # One whose scenario no longer validates does not.
    saved["settings"]["scenario"]["train"]["retired_field"] = 1
    saved_file.write_text(json.dumps(saved))
    assert main([*common[:8], "--out", str(moved), *TINY_SETTINGS, "--variants", "flat"]) == 0
    assert "finished earlier" not in capsys.readouterr().out

    # Other settings (here more evaluation episodes) make the saved result stand for another run: trained again.
    assert main([*common[:7], "3", *common[8:], "--variants", "flat"]) == 0
    assert "finished earlier" not in capsys.readouterr().out
    assert len(list((tmp_path / "runs" / "flat").glob("beacon-*"))) == 2


def test_finished_only_writes_the_table_of_the_finished_runs_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    common = tiny_ablate(tmp_path)
    assert main([*common, "--variants", "flat"]) == 0
    first = json.loads((tmp_path / "runs" / "flat" / "seed-0.json").read_text())["result"]

    seeds = ["--seeds", "0", "1"]
    assert main([*common, *seeds, "--variants", "flat", "no_text", "--finished-only"]) == 0
    assert not (tmp_path / "runs" / "no_text").exists() and len(list((tmp_path / "runs" / "flat").glob("beacon-*"))) == 1
    summary = json.loads((tmp_path / "ablation.json").read_text())
    assert summary["variants"]["flat"]["greedy_return"] == [first["greedy_return"], None]
    assert summary["variants"]["no_text"]["success_rate"] == [None, None]
    assert summary["missing"] == [{"variant": "flat", "seed": 1}, {"variant": "no_text", "seed": 0},
                                  {"variant": "no_text", "seed": 1}]
    table = (tmp_path / "ablation.md").read_text()
    assert "Not finished yet" in table and "no_text seed 1" in table and "| no_text | - | - | - / - | - / - |" in table


def test_an_unknown_variant_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["ablate", "beacon", "--variants", "no_smell", "--out", str(tmp_path)]) == 2
    assert "no_smell" in capsys.readouterr().err


def test_the_flat_variant_gets_the_workers_memory_and_no_manager_memory() -> None:
    remembering = [f"workers.{name}.memory={{hidden: 16}}" for name in ("image", "text", "audio")]
    base = load("beacon", [*remembering, "manager.memory={hidden: 8}"])
    flat = load("beacon", [*remembering, "manager.memory={hidden: 8}", *flat_overrides(base)])
    assert flat.workers["flat"].memory == base.workers["audio"].memory and flat.manager.memory is None
    assert load("beacon", flat_overrides(load("beacon"))).workers["flat"].memory is None
    with pytest.raises(ScenarioError, match="the same memory"):
        flat_overrides(load("beacon", ["workers.audio.memory={hidden: 16}"]))
