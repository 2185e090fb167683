"""A user's own environment, from a folder that is not on the import path: every way of naming it in a scenario
trains, and a run reopens in a fresh interpreter without the user setting the import path again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from himo.scenarios.build import build_env
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load
from himo.scenarios.run import train

HIMO = str(Path(sys.executable).parent / "himo")

MODULE = '''
import gymnasium
import numpy as np
from pettingzoo import ParallelEnv
from torchrl.envs import GymEnv

from himo.envs.builtin import make_builtin_env


class Pairs(gymnasium.Env):
    """Reward 1 for the action that names the larger of two numbers; four steps."""

    def __init__(self, length=4):
        self.observation_space = gymnasium.spaces.Dict({"state": gymnasium.spaces.Box(0.0, 1.0, (2,), np.float32)})
        self.action_space = gymnasium.spaces.Discrete(2)
        self.length, self.count, self.numbers = length, 0, np.zeros(2, np.float32)

    def _observation(self):
        self.numbers = self.np_random.random(2).astype(np.float32)
        return {"state": self.numbers}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return self._observation(), {}

    def step(self, action):
        reward = float(int(action) == int(self.numbers.argmax()))
        self.count += 1
        return self._observation(), reward, self.count >= self.length, False, {}


gymnasium.register("MyPairs-v0", entry_point=Pairs)


class Chorus(ParallelEnv):
    """Two singers each paid for saying 1; three steps."""

    metadata = {"name": "chorus"}

    def __init__(self):
        self.possible_agents = ["singer_0", "singer_1"]
        self.agents, self.count = [], 0

    def observation_space(self, agent):
        return gymnasium.spaces.Box(0.0, 1.0, (1,), np.float32)

    def action_space(self, agent):
        return gymnasium.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.agents, self.count = list(self.possible_agents), 0
        return {agent: np.zeros(1, np.float32) for agent in self.agents}, {agent: {} for agent in self.agents}

    def step(self, actions):
        self.count += 1
        done = self.count >= 3
        every = list(self.possible_agents)
        if done:
            self.agents = []
        return ({agent: np.zeros(1, np.float32) for agent in every}, {agent: float(actions[agent]) for agent in every},
                {agent: done for agent in every}, {agent: False for agent in every}, {agent: {} for agent in every})


def make_pairs(length=4):
    return Pairs(length)


def make_chorus():
    return Chorus()


def make_beacon(copies):
    return make_builtin_env("beacon", num_envs=copies, seed=0, max_steps=8)


def make_flat_torchrl():
    return GymEnv("CartPole-v1")


def make_number():
    return 3
'''

SHORT = "train: {frames: 128, frames_per_batch: 64}"


def write_scenario(folder: Path, env: str, modalities: str, extra: str = "") -> Path:
    """``folder/envs/my_envs.py`` (the module) and ``folder/scenario.yaml`` naming it, with ``envs`` on its path."""
    (folder / "envs").mkdir(exist_ok=True)
    (folder / "envs" / "my_envs.py").write_text(MODULE)
    path = folder / "scenario.yaml"
    path.write_text(
        f"name: mine\nenv: {{{env}, python_path: [envs], num_envs: 2}}\nmodalities: {modalities}\n{SHORT}\n"
        f"log: {{dir: {folder / 'runs'}}}\n{extra}"
    )
    return path


VECTOR = "{vector: {key: state, encoder: mlp}}"
FORMS = {
    "gymnasium id from the module": ("id: gymnasium/my_envs:MyPairs-v0", VECTOR),
    "python factory of a Gymnasium env": ("id: python/my_envs:make_pairs, kwargs: {length: 3}", VECTOR),
    "python factory of a PettingZoo env": ("id: python/my_envs:make_chorus", VECTOR),
    "python factory of a TorchRL env": ("id: python/my_envs:make_beacon, kwargs: {copies: 2}", "{image: {key: view, encoder: cnn}}"),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_each_way_of_naming_an_env_of_ones_own_trains(form: str, tmp_path: Path) -> None:
    env, modalities = FORMS[form]
    result = train(load(write_scenario(tmp_path, env, modalities)), progress=False)
    assert result.frames == 128


def test_a_run_reopens_in_a_fresh_interpreter_without_the_import_path(tmp_path: Path) -> None:
    env, modalities = FORMS["python factory of a Gymnasium env"]
    result = train(load(write_scenario(tmp_path, env, modalities)), progress=False)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    evaluated = subprocess.run(
        [HIMO, "eval", str(result.folder), "--episodes", "4"], capture_output=True, text=True, timeout=300,
        env=environment, cwd="/", check=False,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "return" in evaluated.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("id: python/my_envs:make_number", r"returned a int; expected a gymnasium.Env"),
        ("id: python/my_envs:missing", r"module 'my_envs' has no callable 'missing'"),
        ("id: python/my_envs", r"python/<module>:<callable>"),
        ("id: python/not_a_module:make", r"cannot import 'not_a_module'.*env.python_path"),
        ("id: python/my_envs:make_flat_torchrl", r"TorchRL env without agent groups"),
    ],
)
def test_a_factory_that_cannot_give_an_env_is_a_clear_error(env: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=message):
        build_env(load(write_scenario(tmp_path, env, VECTOR)))


def test_a_missing_python_path_folder_is_a_located_error(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "id: python/my_envs:make_pairs", VECTOR)
    with pytest.raises(ScenarioError, match=r"env\.python_path\.0.*folder not found"):
        build_env(load(path, ["env.python_path=[elsewhere]"]))


NOTE_MODULE = '''
import gymnasium
import numpy as np


class Noted(gymnasium.Env):
    """A number to act on, and a free-text note."""

    def __init__(self):
        self.observation_space = gymnasium.spaces.Dict(
            {"state": gymnasium.spaces.Box(0.0, 1.0, (2,), np.float32), "note": gymnasium.spaces.Text(40)}
        )
        self.action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"state": np.zeros(2, np.float32), "note": "go left"}, {}

    def step(self, action):
        return {"state": np.zeros(2, np.float32), "note": "go right"}, 1.0, True, False, {}


def make_noted():
    return Noted()
'''


def test_text_that_no_modality_reads_needs_no_vocabulary_and_text_one_reads_names_it(tmp_path: Path) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "noted.py").write_text(NOTE_MODULE)
    path = tmp_path / "scenario.yaml"
    path.write_text(
        f"name: noted\nenv: {{id: python/noted:make_noted, python_path: [envs], num_envs: 2}}\n"
        f"modalities: {VECTOR}\n{SHORT}\nlog: {{dir: {tmp_path / 'runs'}}}\n"
    )
    assert train(load(path), progress=False).frames == 128
    with pytest.raises(ScenarioError, match=r"modalities\.words\.key: observation 'note' is text: name its tokenizer in env\.kwargs\.vocabularies\.note"):
        build_env(load(path, ["modalities.words={key: note, encoder: transformer}"]))
    words = ["env.kwargs={vocabularies: {note: [go, left, right]}}", "modalities.words={key: note, encoder: transformer}"]
    assert train(load(path, words), progress=False).frames == 128
