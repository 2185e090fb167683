"""Build what a scenario describes. For now: its environment, with reward channels attached."""

from __future__ import annotations

from torchrl.envs import EnvBase, TransformedEnv

from envs import keys
from envs.registry import make_env
from envs.rewards import RewardChannels, make_reward_function
from scenarios.errors import Origin, Problem, ScenarioError, with_suggestion
from scenarios.schema import Scenario


def _error(scenario: Scenario, path: tuple[str, ...], message: str) -> ScenarioError:
    return ScenarioError([Problem(Origin(f"scenario {scenario.name!r}"), path, message)])


def agent_groups(env: EnvBase) -> list[str]:
    """The agent groups of a built env: the sub-tensordicts that hold a reward."""
    return [key[0] for key in env.full_reward_spec.keys(True, True) if len(key) == 2 and key[1] == keys.REWARD]


def check_observation_keys(scenario: Scenario, env: EnvBase) -> None:
    """Every modality's and worker's observation key exists in every group of ``env``."""
    observation_keys = env.full_observation_spec.keys(True)
    for group in agent_groups(env):
        available = sorted(
            key[2] for key in observation_keys if isinstance(key, tuple) and key[:2] == (group, keys.OBSERVATION) and len(key) == 3
        )
        wanted = [(("modalities", name, "key"), modality.key) for name, modality in scenario.modalities.items()]
        wanted += [
            (("workers", name, "shared"), key) for name, worker in scenario.workers.items() for key in worker.shared
        ]
        for path, key in wanted:
            if key not in available:
                message = f"group {group!r} of {scenario.env.id} has no observation {key!r}; it has {available}"
                raise _error(scenario, path, with_suggestion(message, key, available))


def build_env(scenario: Scenario, *, num_envs: int | None = None) -> TransformedEnv:
    """The scenario's batched environment with each worker's reward channel attached.

    Raises ``ScenarioError`` naming the field at fault when the environment rejects its kwargs,
    lacks an observation a modality reads, or lacks a reward component a worker mixes.
    """
    try:
        base = make_env(
            scenario.env.id,
            num_envs=num_envs or scenario.env.num_envs,
            seed=scenario.train.seed,
            device=scenario.train.device,
            **scenario.env.kwargs,
        )
    except (ValueError, TypeError, KeyError, ImportError, ModuleNotFoundError) as error:
        raise _error(scenario, ("env",), f"cannot build {scenario.env.id}: {error}") from None
    check_observation_keys(scenario, base)
    functions = {name: make_reward_function(spec.function, **spec.parameters) for name, spec in scenario.rewards.items()}
    mixes = {name: dict(worker.reward) for name, worker in scenario.workers.items()}
    try:
        return TransformedEnv(base, RewardChannels(mixes, functions=functions))
    except KeyError as error:
        raise _error(scenario, ("workers",), str(error.args[0])) from None
