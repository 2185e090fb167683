"""``himo inspect ENV_ID``: an env's groups, observations, actions and reward components, and a random baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_own_env import MODULE

from himo.scenarios.inspect_env import inspect_env

HIMO = str(Path(sys.executable).parent / "himo")


def test_the_built_in_world_is_described_as_a_scenario_names_it() -> None:
    view = inspect_env("himo/beacon", {"max_steps": 8}, episodes=6)
    (group,) = view.groups
    assert (group.name, group.agents) == ("agents", 2)
    assert group.observations["view"] == "uint8 [3, 20, 20]" and group.observations["sound"] == "float32 [2, 256]"
    assert "mission.input_ids" in group.observations and group.observations["direction"] == "float32 [4]"
    assert group.action == "categorical, 4 choices"
    assert group.reward_components == ["explore", "instruction", "approach_sound"]
    assert view.success_rate is not None and 0.0 <= view.success_rate <= 1.0  # the world reports success itself


def test_heterogeneous_groups_and_a_random_baseline() -> None:
    view = inspect_env("pettingzoo/mpe2.simple_speaker_listener_v4", {"continuous_actions": False}, episodes=4)
    shapes = {group.name: group.observations["state"] for group in view.groups}
    assert shapes == {"speaker": "float32 [3]", "listener": "float32 [11]"}
    assert {group.name: group.action for group in view.groups} == {
        "speaker": "categorical, 3 choices", "listener": "categorical, 5 choices"
    }
    # A random pair is far from the landmark (references: random about -42 over 25 steps).
    assert all(-120.0 < group.random_return < -10.0 for group in view.groups)
    assert view.success_rate is None


def test_an_env_of_ones_own_from_its_folder_with_a_success_threshold(tmp_path: Path) -> None:
    (tmp_path / "my_envs.py").write_text(MODULE)
    view = inspect_env("python/my_envs:make_pairs", {"length": 4}, episodes=40, python_path=[str(tmp_path)], success_above=2.5)
    (group,) = view.groups
    assert group.observations == {"state": "float32 [2]"} and group.action == "categorical, 2 choices"
    # Four coin flips: a return above 2.5 (3 or 4 right) happens in 5 of 16 episodes.
    assert 1.4 < group.random_return < 2.6 and 0.05 < view.success_rate < 0.65


def test_the_command_prints_the_view_and_reports_bad_input_without_a_traceback() -> None:
    shown = subprocess.run([HIMO, "inspect", "gymnasium/CartPole-v1", "--episodes", "3"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "observation state: float32 [4]" in shown.stdout and "random policy, 3 episodes" in shown.stdout
    for arguments, message in [
        (["gymnasium/Nope-v0"], "cannot build gymnasium/Nope-v0"),
        (["himo/beacon", "--kwargs", "[1]"], "--kwargs: expected a mapping"),
    ]:
        failed = subprocess.run([HIMO, "inspect", *arguments], capture_output=True, text=True, check=False)
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr
