"""Each modality of himo/beacon is necessary: a scripted policy loses clearly without any one of them."""

from __future__ import annotations

import pytest

from himo.envs.builtin import make_builtin_env
from himo.envs.builtin.scripted import ScriptedBeaconPolicy, evaluate_scripted

EPISODES = 192


def evaluate(use_image: bool, use_text: bool, use_audio: bool) -> dict[str, float]:
    env = make_builtin_env("beacon", num_envs=EPISODES, seed=11)
    policy = ScriptedBeaconPolicy(
        env.config,
        env.tokenizers["mission"],
        num_envs=EPISODES,
        use_image=use_image,
        use_text=use_text,
        use_audio=use_audio,
        seed=11,
    )
    return evaluate_scripted(env, policy)


@pytest.fixture(scope="module")
def full_information() -> dict[str, float]:
    return evaluate(use_image=True, use_text=True, use_audio=True)


def test_full_information_policy_mostly_succeeds(full_information):
    assert full_information["success"] > 0.9
    assert full_information["lava"] == 0 and full_information["wrong_beacon"] == 0


@pytest.mark.parametrize(
    ("missing", "flags", "why"),
    [
        ("text", dict(use_image=True, use_text=False, use_audio=True), "wrong_beacon"),  # guesses the target
        ("audio", dict(use_image=True, use_text=True, use_audio=False), "timeout"),  # searches by sight
        ("image", dict(use_image=False, use_text=True, use_audio=True), "lava"),  # walks blind
    ],
)
def test_each_missing_modality_costs_clearly(full_information, missing, flags, why):
    deprived = evaluate(**flags)
    assert full_information["success"] - deprived["success"] > 0.15, missing
    assert full_information["return"] - deprived["return"] > 0.15, missing
    assert deprived[why] > full_information[why] + 0.1, missing


@pytest.mark.parametrize("only", ["image", "text", "audio"])
def test_no_modality_suffices_alone(full_information, only):
    alone = evaluate(use_image=only == "image", use_text=only == "text", use_audio=only == "audio")
    assert alone["success"] < 0.3 < full_information["success"] - 0.3, only
