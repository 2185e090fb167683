"""The Gymnasium adapter: layout, batched stepping with partial resets, seeding, MiniGrid text, components."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from envs_test_helpers import COMPONENTS_ENV_ID, EPISODE_LENGTH
from torchrl.envs.utils import check_env_specs

from himo.envs import keys
from himo.envs.gymnasium_adapter import GROUP, import_optional, make_gymnasium_env
from himo.envs.spaces import ObservationConverter
from himo.envs.registry import make_env
from himo.envs.text import decode_ids

BABYAI = "BabyAI-GoToRedBallGrey-v0"
DOORKEY = "MiniGrid-DoorKey-5x5-v0"


def fixed_actions(steps: int, num_envs: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 2, (steps, num_envs, 1), generator=torch.Generator().manual_seed(seed))


def run(env, actions: torch.Tensor):
    """Step ``env`` with the given ``[steps, num_envs, 1]`` actions, auto-resetting finished copies."""
    data = env.reset()
    steps = []
    for action in actions:
        data.set((GROUP, keys.ACTION), action)
        step, data = env.step_and_maybe_reset(data)
        steps.append(step.clone())
    return torch.stack(steps, 1)


def test_cartpole_layout_and_specs() -> None:
    env = make_env("gymnasium/CartPole-v1", num_envs=4, seed=0)
    check_env_specs(env)
    assert env.batch_size == torch.Size([4])
    data = env.rollout(3, break_when_any_done=False)
    assert data[GROUP, keys.OBSERVATION, "state"].shape == (4, 3, 1, 4)
    assert data[GROUP, keys.ACTION].shape == (4, 3, 1) and data[GROUP, keys.ACTION].dtype == torch.int64
    assert data["next", GROUP, keys.REWARD].shape == (4, 3, 1, 1)
    assert data["next", keys.DONE].shape == (4, 3, 1)
    assert data["next", GROUP, keys.TERMINATED].shape == (4, 3, 1, 1)
    assert env.tokenizers == {}


def test_cartpole_auto_reset_matches_single_envs_replayed() -> None:
    """Each copy behaves exactly like its own gymnasium env seeded seed + i and reset when done."""
    num_envs, steps, seed = 3, 120, 7
    env = make_gymnasium_env("CartPole-v1", num_envs=num_envs, seed=seed)
    actions = fixed_actions(steps, num_envs)
    data = run(env, actions)
    assert data["next", keys.DONE].any(), "the test needs episodes that end"
    for copy in range(num_envs):
        reference = gymnasium.make("CartPole-v1")
        observation, _ = reference.reset(seed=seed + copy)
        for step in range(steps):
            assert np.allclose(data[copy, step][GROUP, keys.OBSERVATION, "state"][0].numpy(), observation)
            observation, reward, terminated, truncated, _ = reference.step(int(actions[step, copy, 0]))
            got = data[copy, step]["next"]
            assert np.allclose(got[GROUP, keys.OBSERVATION, "state"][0].numpy(), observation)
            assert bool(got[keys.TERMINATED]) == terminated and bool(got[GROUP, keys.DONE]) == (terminated or truncated)
            if terminated or truncated:
                observation, _ = reference.reset()


def test_seeding_is_deterministic() -> None:
    actions = fixed_actions(40, 2)
    first = run(make_gymnasium_env("CartPole-v1", num_envs=2, seed=3), actions)
    second = run(make_gymnasium_env("CartPole-v1", num_envs=2, seed=3), actions)
    other = run(make_gymnasium_env("CartPole-v1", num_envs=2, seed=4), actions)
    assert torch.equal(first["next", GROUP, keys.OBSERVATION, "state"], second["next", GROUP, keys.OBSERVATION, "state"])
    assert not torch.equal(first[GROUP, keys.OBSERVATION, "state"], other[GROUP, keys.OBSERVATION, "state"])


@pytest.mark.parametrize("name", [BABYAI, DOORKEY])
def test_minigrid_layout_and_mission_tokens(name: str) -> None:
    env = make_gymnasium_env(name, num_envs=2, seed=0)
    data = env.reset()
    observation = data[GROUP, keys.OBSERVATION]
    assert observation["image"].shape == (2, 1, 3, 7, 7) and observation["image"].dtype == torch.uint8
    assert observation["direction"].shape == (2, 1) and observation["direction"].dtype == torch.int64
    assert observation["mission", keys.INPUT_IDS].shape == (2, 1, 64)
    assert observation["mission", keys.ATTENTION_MASK].dtype == torch.bool
    # Same seed, same first observation as the raw env; image channels-first; mission decodes back.
    raw, _ = gymnasium.make(name).reset(seed=0)
    assert torch.equal(observation["image"][0, 0], torch.as_tensor(raw["image"]).permute(2, 0, 1))
    assert int(observation["direction"][0, 0]) == raw["direction"]
    decoded = decode_ids(env.tokenizers["mission"], observation["mission", keys.INPUT_IDS][:, 0])
    assert decoded[0] == raw["mission"]
    assert observation["mission", keys.ATTENTION_MASK][0, 0].sum() == len(raw["mission"].replace(",", " ,").split())
    check_env_specs(env)


def test_babyai_missions_round_trip_without_unknown_words() -> None:
    tokenizer = make_gymnasium_env(BABYAI, num_envs=1, seed=0).tokenizers["mission"]
    missions = [
        "go to the red ball",
        "pick up a blue key on your left, then open the grey door in front of you",
        "put the yellow box behind you next to a purple ball and go to the green door on your right",
        "open a door after you pick up the box",
        "use the key to open the door and then get to the goal",
    ]
    ids = tokenizer(missions, padding=True, return_tensors="pt")["input_ids"]
    assert not (ids == tokenizer.unk_token_id).any()
    assert decode_ids(tokenizer, ids) == missions


def test_babyai_rejection_prints_are_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    env = make_gymnasium_env(BABYAI, num_envs=4, seed=0)
    for _ in range(5):
        env.reset()
    assert "Sampling rejected" not in capsys.readouterr().out


def test_reward_components_from_info_reach_their_keys() -> None:
    env = make_gymnasium_env(COMPONENTS_ENV_ID, num_envs=2, seed=0)
    check_env_specs(env)
    # Declared as observations (the project's convention), zero after a reset.
    assert (GROUP, keys.REWARD_COMPONENTS, "bonus") in env.full_observation_spec.keys(True, True)
    assert env.reward_keys == [(GROUP, keys.REWARD)]
    assert torch.all(env.reset()[GROUP, keys.REWARD_COMPONENTS, "bonus"] == 0)
    data = env.rollout(EPISODE_LENGTH + 2, break_when_any_done=False)
    bonus = data["next", GROUP, keys.REWARD_COMPONENTS, "bonus"]
    penalty = data["next", GROUP, keys.REWARD_COMPONENTS, "penalty"]
    assert bonus.shape == (2, EPISODE_LENGTH + 2, 1, 1)
    assert torch.all(bonus == 2.0)
    # penalty on even step counts only (1-based within the episode), 0 where not reported
    expected = torch.tensor([0.0, -0.5, 0.0, -0.5, 0.0, 0.0, -0.5])
    assert torch.equal(penalty[0, :, 0, 0], expected)
    assert torch.equal(data["next", keys.DONE][0, :, 0], torch.tensor([False] * 4 + [True] + [False] * 2))


def test_undeclared_reward_component_is_an_error() -> None:
    env = make_gymnasium_env(COMPONENTS_ENV_ID, num_envs=1, seed=0, extra_component=True)
    with pytest.raises(KeyError, match="surprise"):
        env.rollout(2)


def test_a_text_space_is_tokenized_over_its_vocabulary_and_left_out_without_one() -> None:
    from himo.envs.spaces import ObservationConverter

    space = gymnasium.spaces.Dict({"note": gymnasium.spaces.Text(20)})
    unread = ObservationConverter(space)  # no vocabulary: left out, so an env whose text nobody reads still builds
    assert unread.entries == [] and unread.untokenized == ["note"]
    converter = ObservationConverter(space, vocabularies={"note": ["hello", "world"]}, text_length=4)
    converted = converter.convert({"note": ["hello world", "world"]}, [2, 1])
    assert converted["note", keys.INPUT_IDS].shape == (2, 1, 4)
    assert decode_ids(converter.tokenizers["note"], converted["note", keys.INPUT_IDS][:, 0]) == ["hello world", "world"]


def test_a_word_missing_from_the_vocabulary_is_an_error_naming_it() -> None:
    from himo.envs.spaces import ObservationConverter

    space = gymnasium.spaces.Dict({"note": gymnasium.spaces.Text(30)})
    converter = ObservationConverter(space, vocabularies={"note": ["hello", "world"]}, text_length=4)
    with pytest.raises(ValueError, match=r"text observation 'note': \['brave'\] in 'hello brave world'.*vocabularies\.note"):
        converter.convert({"note": ["hello brave world"]}, [1])


def test_nested_dict_spaces_give_nested_entries() -> None:
    from himo.envs.spaces import ObservationConverter

    spaces = gymnasium.spaces
    space = spaces.Dict(
        {
            "pos": spaces.Box(0.0, 1.0, (2,), np.float32),
            "goal": spaces.Dict(
                {
                    "note": spaces.Text(20),
                    "seen": spaces.Box(0, 1, (3,), dtype=np.bool_),
                    "deeper": spaces.Dict({"cell": spaces.Discrete(6)}),
                }
            ),
        }
    )
    converter = ObservationConverter(space, vocabularies={"note": ["red", "door"]}, text_length=4)
    assert set(converter.spec.keys(True, True)) == {
        "pos", ("goal", "note", keys.INPUT_IDS), ("goal", "note", keys.ATTENTION_MASK), ("goal", "seen"),
        ("goal", "deeper", "cell"),
    }
    items = [
        {"pos": np.array([0.1 * i, 0.5], np.float32),
         "goal": {"note": "red door" if i % 2 else "door", "seen": np.array([True, False, i % 2 == 0]), "deeper": {"cell": i}}}
        for i in range(6)
    ]
    # Per-item observations (PettingZoo) and a nested mapping of batched arrays (vector env) agree.
    from_items = converter.convert(converter.collate(items), [3, 2])
    batched = {
        "pos": np.stack([item["pos"] for item in items]),
        "goal": {
            "note": np.array([item["goal"]["note"] for item in items]),
            "seen": np.stack([item["goal"]["seen"] for item in items]),
            "deeper": {"cell": np.array([i for i in range(6)])},
        },
    }
    assert (from_items == converter.convert(batched, [3, 2])).all()
    assert converter.spec.expand(3, 2).is_in(from_items)
    assert from_items["goal", "deeper", "cell"].reshape(-1).tolist() == list(range(6))
    assert from_items["goal", "seen"].dtype == torch.bool and not from_items["goal", "seen"][0, 0, 1]
    notes = decode_ids(converter.tokenizers["note"], from_items["goal", "note", keys.INPUT_IDS].reshape(6, 4))
    assert notes == ["door", "red door"] * 3


def test_missing_optional_package_names_the_extra() -> None:
    with pytest.raises(ImportError, match=r"himo\[minigrid\]"):
        import_optional("himo_no_such_package", "minigrid", "gymnasium env 'BabyAI-x'")


def test_whatever_the_env_constructor_raises_becomes_one_clear_error() -> None:
    # Gymnasium's own error types and an AttributeError from a bad kwarg both surface as ValueError.
    with pytest.raises(ValueError, match=r"gymnasium.make\('CartPol-v1'\) failed: NameNotFound: .*CartPole"):
        make_gymnasium_env("CartPol-v1", num_envs=1, seed=0)
    with pytest.raises(ValueError, match=r"gymnasium.make\('CartPole-v1', render_mode=7\) failed: AttributeError"):
        make_gymnasium_env("CartPole-v1", num_envs=1, seed=0, render_mode=7)


@pytest.mark.parametrize(
    "space",
    [
        gymnasium.spaces.Dict({"pos": gymnasium.spaces.Box(0, 1, (2,)), "items": gymnasium.spaces.Sequence(gymnasium.spaces.Discrete(3))}),
        gymnasium.spaces.Dict({"inner": gymnasium.spaces.Dict({"items": gymnasium.spaces.Tuple([gymnasium.spaces.Discrete(2)])})}),
    ],
    ids=["sequence", "nested tuple"],
)
def test_an_observation_space_himo_cannot_map_is_named_with_what_is_supported(space: gymnasium.Space) -> None:
    with pytest.raises(ValueError, match=r"observation '(inner\.)?items': a (Sequence|Tuple) space is not supported; himo maps Box"):
        ObservationConverter(space)
