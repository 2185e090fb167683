"""Build what a scenario describes: its environment (reward channels, option state) and its policy."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy
import torch

from tensordict.nn import TensorDictModuleBase
from torchrl.envs import EnvBase, TransformedEnv

from himo.agents.declaration import Targets
from himo.agents.registry import ALGORITHMS
from himo.agents.heads import CriticView
from himo.envs import keys
from himo.envs.bookkeeping import EpisodeBookkeeping
from himo.envs.other_groups import OtherGroups
from himo.envs.registry import agent_groups, make_env, put_on_import_path
from himo.envs.rewards import RewardChannels, RewardFunctionError
from himo.hierarchy.actions import ActionSpace, DiscreteActions, action_space
from himo.hierarchy.goals import GoalNetwork
from himo.hierarchy.learner import GroupLearner
from himo.hierarchy.memory import STATE_LEAVES, RecurrentCore
from himo.hierarchy.networks import AgentIdentity, ManagerNetwork, WorkerSpec
from himo.hierarchy.policy import GroupPolicy, HierarchicalPolicy
from himo.hierarchy.selectors import OptionRules
from himo.hierarchy.state import IS_INIT, option_state_spec
from himo.modalities.base import EncoderConfig
from himo.modalities.build import build_encoder, encoder_context
from himo.modalities.fusion import build_fusion
from himo.modalities.vector import MlpEncoderConfig
from himo.scenarios.checkpoint import CheckpointError
from himo.scenarios.run_checkpoints import read_named_checkpoint
from himo.scenarios.errors import Origin, Problem, ScenarioError, with_suggestion
from himo.scenarios.schema import Scenario
from himo.scenarios.schema_levels import LearnedTermination, MemoryConfig


def _error(scenario: Scenario, path: tuple[str, ...], message: str) -> ScenarioError:
    return ScenarioError([Problem(Origin(f"scenario {scenario.name!r}"), path, message)])


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
        untokenized = getattr(env, "untokenized", [])
        for path, key in wanted:
            if key in untokenized:
                message = (
                    f"observation {key!r} is text: name its tokenizer in env.kwargs.vocabularies.{key} (a list of "
                    "words, a word-list file or a transformers tokenizer folder) to read it"
                )
                raise _error(scenario, path, message)
            if key not in available:
                message = f"group {group!r} of {scenario.env.id} has no observation {key!r}; it has {available}"
                raise _error(scenario, path, with_suggestion(message, key, available))


def build_env(scenario: Scenario, *, num_envs: int | None = None, seed: int | None = None) -> TransformedEnv:
    """The scenario's batched environment with each worker's reward channel attached.

    Raises ``ScenarioError`` naming the field at fault when the environment rejects its kwargs,
    lacks an observation a modality reads, or lacks a reward component a worker mixes.
    """
    _add_python_path(scenario)
    try:
        base = make_env(
            scenario.env.id,
            num_envs=num_envs or scenario.env.num_envs,
            seed=scenario.train.seed if seed is None else seed,
            device=scenario.train.device,
            **scenario.env.kwargs,
        )
    except (ValueError, TypeError, KeyError, ImportError, ModuleNotFoundError) as error:
        raise _error(scenario, ("env",), f"cannot build {scenario.env.id}: {error}") from None
    check_observation_keys(scenario, base)
    functions = {name: spec.build() for name, spec in scenario.rewards.items()}
    mixes = {name: dict(worker.reward) for name, worker in scenario.workers.items()}
    try:
        env = TransformedEnv(base, RewardChannels(mixes, functions=functions))
    except RewardFunctionError as error:
        raise _error(scenario, ("rewards", error.component, error.field), str(error)) from None
    except KeyError as error:
        raise _error(scenario, ("workers",), str(error.args[0])) from None
    groups = agent_groups(env)
    if scenario.multi_agent.critic == "global":
        env.append_transform(_other_groups(scenario, env, groups))
    goal_size = scenario.manager.goal.size if scenario.manager.goal is not None else 0
    agents = {group: agents_in(env, group) for group in groups}
    state = option_state_spec(agents, len(scenario.workers), goal_size, memory_states(scenario))
    env.append_transform(EpisodeBookkeeping(state, episode_sums(scenario, groups), IS_INIT))
    return env


@contextmanager
def side_env(scenario: Scenario, num_envs: int, seed: int) -> Iterator[TransformedEnv]:
    """The scenario's env built beside a run (evaluation, episode media), ``num_envs`` copies seeded from ``seed``,
    with torch seeded the same; the run's torch, Python and NumPy generators are as they were once it closes."""
    state = random.getstate(), numpy.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        env = build_env(scenario, num_envs=num_envs, seed=seed)
        try:
            yield env
        finally:
            if not env.is_closed:
                env.close()
            random.setstate(state[0])
            numpy.random.set_state(state[1])


def other_group_keys(scenario: Scenario) -> list[str]:
    """What a global critic reads of the other groups: the observations of the scenario's vector modalities (``mlp``
    encoders) and of its workers' shared states."""
    found = [modality.key for modality in scenario.modalities.values() if modality.encoder == "mlp"]
    found += sorted({key for worker in scenario.workers.values() for key in worker.shared})
    return list(dict.fromkeys(found))


def _other_groups(scenario: Scenario, env: EnvBase, groups: list[str]) -> OtherGroups:
    """The transform that shows each group the others' observations, with a located error where it cannot."""
    path = ("multi_agent", "critic")
    if len(groups) < 2:
        raise _error(scenario, path, f"a global critic reads the other agent groups; {scenario.env.id} has only {groups}: use centralised")
    read = other_group_keys(scenario)
    if not read:
        raise _error(
            scenario,
            path,
            "a global critic reads the other groups' vector observations (the keys of mlp modalities and of workers' "
            "shared states); this scenario reads none",
        )
    try:
        return OtherGroups({group: read for group in groups})
    except ValueError as error:
        raise _error(scenario, path, str(error)) from None


def _add_python_path(scenario: Scenario) -> None:
    """Put ``env.python_path``'s folders at the front of the import path (once each), so the env's module imports."""
    for index, folder in enumerate(scenario.env.python_path):
        if not Path(folder).is_dir():
            raise _error(scenario, ("env", "python_path", str(index)), f"folder not found: {folder}")
    put_on_import_path(scenario.env.python_path)


def memory_states(scenario: Scenario) -> dict[tuple[str, ...], tuple[int, int]]:
    """Every recurrent core's state leaves under a group, with their ``(layers, size)``."""
    cores = {(keys.WORKERS, name): worker.memory for name, worker in scenario.workers.items() if worker.memory}
    if scenario.manager.memory is not None and scenario.has_manager:
        cores[(keys.MANAGER,)] = scenario.manager.memory
    return {
        (*path, leaf): (memory.layers, memory.hidden) for path, memory in cores.items() for leaf in STATE_LEAVES[memory.kind]
    }


def build_learners(scenario: Scenario, policy: HierarchicalPolicy) -> dict[str, GroupLearner]:
    """One learner per agent group of ``policy``, with the scenario's algorithms and memory chunks."""
    algorithm, train = scenario.algorithm, scenario.train
    worker_chunk = next((worker.memory.chunk for worker in scenario.workers.values() if worker.memory), None)
    manager_chunk = scenario.manager.memory.chunk if scenario.manager.memory is not None else None
    return {
        group: GroupLearner(group_policy, algorithm.manager, algorithm.workers, train.gamma, train.frames, worker_chunk, manager_chunk)
        for group, group_policy in policy.groups.items()
    }


def _recurrent_core(memory: MemoryConfig | None, input_size: int) -> RecurrentCore | None:
    return RecurrentCore(memory.kind, input_size, memory.hidden, memory.layers) if memory is not None else None


def episode_sums(scenario: Scenario, groups: list[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``(reward, running episode sum)`` keys of the team reward and of every reward channel, per group."""
    sums = []
    for group in groups:
        sums.append(((group, keys.REWARD), (group, keys.EPISODE_REWARD)))
        sums += [(keys.reward_channel(group, worker), (group, keys.EPISODE_CHANNEL_RETURNS, worker)) for worker in scenario.workers]
    return sums


SHARED_EMBEDDING_SIZE = 16
"""Width of the linear embedding of each shared low-dimensional observation."""


def agents_in(env: EnvBase, group: str) -> int:
    """Number of agents in ``group``."""
    return int(env.full_reward_spec[group].shape[-1])


def _action_space(scenario: Scenario, env: EnvBase, group: str) -> ActionSpace:
    try:
        actions = action_space(group, env.full_action_spec[group, keys.ACTION])
    except TypeError as error:
        raise _error(scenario, ("env", "id"), f"group {group!r}: {error}") from None
    for name, worker in scenario.workers.items():
        try:
            actions.control_mask(worker.parts)
        except ValueError as error:
            raise _error(scenario, ("workers", name, "parts"), f"group {group!r}: {error}") from None
        if not isinstance(actions, DiscreteActions) and worker.actions is not None:
            message = f"group {group!r} has continuous actions: a worker acts on the whole action vector"
            raise _error(scenario, ("workers", name, "actions"), message)
    if not isinstance(actions, DiscreteActions):
        return actions
    parts = actions
    for name, worker in scenario.workers.items():
        if parts.composite and worker.actions is not None:
            message = f"group {group!r} has a composite action {list(parts.names)}: choose its parts with 'parts'"
            raise _error(scenario, ("workers", name, "actions"), message)
    workers_algorithm = ALGORITHMS[scenario.algorithm.workers.name]
    if parts.composite and not workers_algorithm.composite_actions:
        message = (
            f"group {group!r} has a composite action {list(parts.names)}; {workers_algorithm.name} workers cannot act "
            f"on one ({workers_algorithm.refusal})"
        )
        raise _error(scenario, ("algorithm", "workers", "name"), message)
    controlled = {part for worker in scenario.workers.values() for part in (worker.parts or parts.names)}
    if parts.composite and controlled != set(parts.names):
        missing = sorted(set(parts.names) - controlled)
        raise _error(scenario, ("workers",), f"no worker acts on action part(s) {missing} of group {group!r}")
    return parts


def _allowed_actions(scenario: Scenario, env: EnvBase, worker_name: str, actions: int) -> tuple[int, ...] | None:
    wanted = scenario.workers[worker_name].actions
    if wanted is None:
        return None
    names = list(getattr(env, "action_names", []) or [])
    allowed = []
    for action in wanted:
        if isinstance(action, int) and 0 <= action < actions:
            allowed.append(action)
        elif isinstance(action, str) and action in names:
            allowed.append(names.index(action))
        else:
            known = f"names {names} or indices 0..{actions - 1}" if names else f"indices 0..{actions - 1}"
            raise _error(scenario, ("workers", worker_name, "actions"), f"unknown action {action!r}; expected {known}")
    return tuple(allowed)


def option_rules(scenario: Scenario) -> OptionRules:
    """The manager's mode and termination as the policy and learner read them.

    A single worker has no manager network, so nothing learns when its option ends: learned termination becomes a
    decision at every step (which only goals read, refreshed then)."""
    manager = scenario.manager
    termination = manager.termination
    if isinstance(termination, LearnedTermination) and not scenario.has_manager:
        return OptionRules(mode=manager.mode, termination="interval", every=1)
    if isinstance(termination, LearnedTermination):
        return OptionRules(
            mode=manager.mode, termination="learned", switching_cost=termination.switching_cost, intra_option=manager.intra_option
        )
    return OptionRules(mode=manager.mode, termination="interval", every=termination.every, intra_option=manager.intra_option)


def build_policy(scenario: Scenario, env: EnvBase) -> HierarchicalPolicy:
    """One hierarchical policy per agent group of ``env``, as the scenario describes it."""
    groups = {}
    for group in agent_groups(env):
        encoders = {name: _encoder(scenario, config, env, group, name) for name, config in scenario.modalities.items()}
        shared_keys = sorted({key for worker in scenario.workers.values() for key in worker.shared})
        shared_encoders = {
            key: MlpEncoderConfig(key=key, hidden_sizes=(), embedding_dim=SHARED_EMBEDDING_SIZE).build(
                encoder_context(env, group, key, keys.shared_embedding(group, key))
            )
            for key in shared_keys
        }
        actions = _action_space(scenario, env, group)
        agents = agents_in(env, group)
        identity_size = agents if scenario.multi_agent.agent_id else 0
        critic = _critic_view(scenario, env, group, agents, getattr(scenario.algorithm.workers, "value_norm", None))
        manager_critic = replace(critic, value_norm=getattr(scenario.algorithm.manager, "value_norm", None))
        critic_inputs = [(group, keys.OBSERVATION, keys.OTHER_GROUPS)] if critic.extra else []
        goal = _goal_network(scenario)
        goal_size = goal.size if goal is not None else 0
        workers = []
        for name, worker in scenario.workers.items():
            modalities = scenario.worker_modalities(name)
            inputs = tuple(keys.embedding(group, modality) for modality in modalities)
            inputs += tuple(keys.shared_embedding(group, key) for key in worker.shared)
            inputs += (keys.agent_id(group),) if identity_size else ()
            inputs += (keys.worker(group, name, keys.GOAL),) if goal_size else ()
            size = sum(scenario.modalities[modality].embedding_dim for modality in modalities)
            size += SHARED_EMBEDDING_SIZE * len(worker.shared) + identity_size + goal_size
            allowed = _allowed_actions(scenario, env, name, actions.total) if isinstance(actions, DiscreteActions) else None
            core = _recurrent_core(worker.memory, size)
            workers.append(WorkerSpec(name, inputs, size, tuple(worker.hidden), allowed, critic, worker.parts, core))
        groups[group] = GroupPolicy(
            group, encoders, shared_encoders, workers, _manager_network(scenario, group, identity_size, manager_critic),
            actions, option_rules(scenario), AgentIdentity(group, agents) if identity_size else None,
            *_env_masks(scenario, env, group, actions), goal, critic_inputs,
        )
    # On train.device from the start: the collector would otherwise act with a device copy while learning updates
    # the CPU original.
    return HierarchicalPolicy(groups).to(scenario.train.device)


def _manager_network(scenario: Scenario, group: str, identity_size: int, critic: CriticView) -> ManagerNetwork | None:
    """The group's manager network; ``None`` for a single worker, which leaves it nothing to choose."""
    if not scenario.has_manager:
        return None
    manager = scenario.manager
    fusion = build_fusion(
        manager.fusion,
        [keys.embedding(group, name) for name in scenario.modalities],
        keys.embedding(group, keys.FUSED),
        embedding_dim=64,
        input_dims=[config.embedding_dim for config in scenario.modalities.values()],
    ).module
    return ManagerNetwork(
        fusion,
        fusion.output_dim,
        len(scenario.workers),
        manager.hidden,
        option_critic=option_rules(scenario).learned,
        agent_id_size=identity_size,
        critic=critic,
        memory=_recurrent_core(manager.memory, fusion.output_dim + identity_size),
    )


def _encoder(scenario: Scenario, config: EncoderConfig, env: EnvBase, group: str, modality: str) -> TensorDictModuleBase:
    """The modality's encoder for ``group``; an observation it cannot read is an error at ``modalities.<modality>``."""
    condition = config.conditioned_on
    condition_size = scenario.modalities[condition].embedding_dim if condition is not None else 0
    try:
        return build_encoder(config, env, group, modality, scenario.train.precision, condition_size)
    except ValueError as error:
        raise _error(scenario, ("modalities", modality), f"group {group!r}: {error}") from None


def _critic_view(scenario: Scenario, env: EnvBase, group: str, agents: int, value_norm: str | None) -> CriticView:
    """What the group's critics read beside each agent's own features (``multi_agent.critic``), and how a level's
    critics scale their values (its ``value_norm``)."""
    kind = scenario.multi_agent.critic
    if kind == "local":
        return CriticView(value_norm=value_norm)
    if kind == "centralised":
        return CriticView(agents=agents, value_norm=value_norm)
    key = (group, keys.OBSERVATION, keys.OTHER_GROUPS)
    if key not in env.full_observation_spec.keys(True):
        raise _error(scenario, ("multi_agent", "critic"), f"a global critic needs the env built by the scenario ({key} is missing)")
    return CriticView(agents=agents, extra=int(env.full_observation_spec[key].shape[-1]), value_norm=value_norm)


def _goal_network(scenario: Scenario) -> GoalNetwork | None:
    """The manager's goal networks (one per worker), held fixed when the manager is frozen (the briefing is the manager's)."""
    config = scenario.manager.goal
    if config is None:
        return None
    embeddings = sum(modality.embedding_dim for modality in scenario.modalities.values())
    network = GoalNetwork(embeddings, config.size, config.hidden, len(scenario.workers), config.refresh == "step")
    if scenario.algorithm.manager.frozen:
        network.requires_grad_(False)
    return network


def _env_masks(scenario: Scenario, env: EnvBase, group: str, actions: ActionSpace) -> tuple[bool, bool]:
    """Whether the env gives the group's legal actions, and whether it is turn-based; errors for what cannot use them."""
    observed = env.full_observation_spec[group].keys()
    legal_actions, turn_based = keys.ACTION_MASK in observed, keys.ACTING in observed
    if legal_actions and (not isinstance(actions, DiscreteActions) or actions.composite):
        message = f"group {group!r} has an action mask: legal actions are supported for a single categorical action"
        raise _error(scenario, ("env", "id"), message)
    workers = ALGORITHMS[scenario.algorithm.workers.name]
    if turn_based and workers.targets is Targets.REPLAY:
        # The manager's replayed transitions are its options, which begin only on an agent's turns.
        message = (
            f"group {group!r} takes turns (a turn-based env): {workers.name} workers replay single env steps, "
            f"including those where an agent did not act; use an on-policy worker algorithm"
        )
        raise _error(scenario, ("algorithm", "workers", "name"), message)
    return legal_actions, turn_based


LEVEL_MODULES = {"workers": ("encoders", "shared_encoders", "memories", "workers"), "manager": ("manager", "goal")}
"""Sub-modules of each group policy that belong to each level."""


def load_level_checkpoints(scenario: Scenario, policy: HierarchicalPolicy) -> None:
    """Load the parameters of every level whose ``algorithm.<level>.checkpoint`` names a run checkpoint (a
    file, or a run folder: its newest readable one, see ``himo.scenarios.run_checkpoints.read_named_checkpoint``)."""
    for level, modules in LEVEL_MODULES.items():
        path = getattr(scenario.algorithm, level).checkpoint
        if path is None:
            continue
        field = ("algorithm", level, "checkpoint")
        try:
            found = read_named_checkpoint(Path(path))
            saved = found.state["policy"]
        except (CheckpointError, KeyError) as error:
            raise _error(scenario, field, str(error)) from None
        for line in found.warnings():
            print(f"{'.'.join(field)}: {line}", file=sys.stderr)
        own = policy.state_dict()
        wanted = [name for name in own if name.split(".")[2] in modules]
        missing = [name for name in wanted if name not in saved or saved[name].shape != own[name].shape]
        if missing:
            message = f"{found.path} does not hold this scenario's {level} (first mismatch: {missing[0]})"
            raise _error(scenario, field, message)
        policy.load_state_dict({**own, **{name: saved[name] for name in wanted}})
