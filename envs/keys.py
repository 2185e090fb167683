"""Every TensorDict key himo reads or writes, as named constants.

Keys are nested per agent group, then per level (docs/concepts.md shows them). Build nested keys with the
helpers below rather than spelling tuples by hand, so a rename happens in one place.
"""

from __future__ import annotations

# Top-level and per-group leaves (TorchRL's vocabulary).
NEXT = "next"
OBSERVATION = "observation"
ACTION = "action"
ACTION_MASK = "action_mask"  # legal actions of each agent at this step, [..., actions] bool, where the env has them
ACTING = "mask"  # turn-based (AEC) envs: whether each agent acts at this step (TorchRL's PettingZoo "mask")
REWARD = "reward"
DONE = "done"
TERMINATED = "terminated"
TRUNCATED = "truncated"
EPISODE_REWARD = "episode_reward"
EPISODE_CHANNEL_RETURNS = "episode_channel_returns"
STEP_COUNT = "step_count"
SUCCESS = "success"  # root [N, 1] bool an env may report: whether the episode that ends at this step succeeded

# Text observations are token ids plus an attention mask, nested under the modality's key.
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"

# Reward components as the environment reports them (named, e.g. "explore", "approach_sound"),
# and the per-worker reward channels mixed from them by the scenario.
REWARD_COMPONENTS = "reward_components"
REWARD_CHANNELS = "reward_channels"

# Encoders write one embedding per modality; the manager reads the fused one.
EMBEDDING = "embedding"
FUSED = "fused"
AGENT_ID = "agent_id"  # one-hot index of the agent within its group (optional policy input)
OTHER_GROUPS = "other_groups"  # observation: every other group's vector observations, what global critics read

# Hierarchy levels and their terms.
MANAGER = "manager"
WORKERS = "workers"
OPTION = "option"
AGE = "age"
DECISION = "decision"
WEIGHTS = "weights"
GOAL = "goal"  # the manager's briefing of each worker, set at decisions and held for the option; under a worker: its own
ACTIVE_GOAL = "active_goal"  # the goals in force at this step ([..., workers, size]), each worker reading its own
MEMORY = "memory"  # a recurrent core's output at this step, what the level's heads read (with memory)
HIDDEN = "hidden"  # a recurrent core's hidden state, [..., layers, size], carried between steps as env state
CELL = "cell"  # an LSTM core's cell state, beside its hidden state
TERMINATION = "termination"
TERMINATION_LOGITS = "termination_logits"  # beta_o(s) = sigmoid(logit_o), per worker (learned termination)
OPTION_VALUES = "option_values"  # Q(s, o) per worker (learned termination)
LOG_PROB = "log_prob"
STATE_VALUE = "state_value"
LOGITS = "logits"
LOC = "loc"
SCALE = "scale"

# Name of the environment's own team reward when it is used as a reward component.
ENV_REWARD_COMPONENT = "env"


def observation(group: str, key: str) -> tuple[str, ...]:
    """Key of the raw observation ``key`` of every agent in ``group``."""
    return (group, OBSERVATION, key)


def reward_component(group: str, name: str) -> tuple[str, ...]:
    """Key of the environment's reward component ``name`` (read from the ``next`` sub-tensordict)."""
    return (NEXT, group, REWARD_COMPONENTS, name)


def reward_channel(group: str, worker: str) -> tuple[str, ...]:
    """Key of the reward channel that worker ``worker`` learns from, within a step's ``next`` sub-tensordict."""
    return (group, REWARD_CHANNELS, worker)


def action_mask(group: str) -> tuple[str, ...]:
    """Key of the group's legal actions (``[..., agents, actions]`` bool), where the env provides them."""
    return (group, ACTION_MASK)


def acting(group: str) -> tuple[str, ...]:
    """Key of which of the group's agents act at this step (``[..., agents]`` bool), in turn-based envs."""
    return (group, ACTING)


def embedding(group: str, modality: str) -> tuple[str, ...]:
    """Key of the embedding an encoder writes for ``modality``."""
    return (group, EMBEDDING, modality)


def manager(group: str, leaf: str) -> tuple[str, ...]:
    """Key of the manager's term ``leaf`` (option, age, decision, weights, log_prob, ...)."""
    return (group, MANAGER, leaf)


def worker(group: str, name: str, leaf: str) -> tuple[str, ...]:
    """Key of worker ``name``'s term ``leaf`` (log_prob, state_value, ...)."""
    return (group, WORKERS, name, leaf)


def shared_embedding(group: str, observation_key: str) -> tuple[str, ...]:
    """Key of the embedding of a shared low-dimensional observation (e.g. the agent's direction)."""
    return (group, EMBEDDING, "shared", observation_key)


def agent_id(group: str) -> tuple[str, ...]:
    """Key of the one-hot agent index the policy may read beside the embeddings."""
    return (group, EMBEDDING, AGENT_ID)
