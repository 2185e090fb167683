"""The hierarchical policy: per group, encoders, a manager over workers, and the option selector.

At every step, for every agent: each modality is encoded once; every worker's heads give logits
and a value for its own reward channel; the manager reads the fused (detached) embeddings of all
modalities and scores the workers (with learned termination, it also gives each worker's
termination logit and option value). The selector (``himo.hierarchy.selectors``) then decides where
due, carries the option elsewhere and takes the action. The option state is read from
``(group, "manager", ...)`` and written to ``("next", group, "manager", ...)``, so it travels as
env state (see ``himo.hierarchy.state``) and any TorchRL collector carries it.

Where the env gives each agent's legal actions (``(group, "action_mask")``), every worker's logits
are masked to them as soon as its heads run, so acting, the combined policy of weighted mode and
learning all see only legal actions. In turn-based envs (``(group, "mask")``) the option state
advances only on an agent's own turns (``himo.hierarchy.selectors``).

With goals (``himo.hierarchy.goals``) a step runs in this order: encoders, manager, the decision, the
goal in force, the workers' heads (which read it), the action. With memory (``himo.hierarchy.memory``) a
worker's recurrent core runs just before its heads, on its inputs, and the manager's between its fusion and
its heads; both advance at every step. The networks besides the encoders (each worker's description, the agents'
identity, the manager's network) are in ``himo.hierarchy.networks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.modules.value_norm import ValueNorm

from himo.agents.base import HeadOutputs, LevelModel, SoftHeadOutputs, parameters_of
from himo.agents.soft_policies import CategoricalPolicy
from himo.envs import keys
from himo.hierarchy.actions import ActionSpace, legal_logits
from himo.hierarchy.goals import GoalNetwork
from himo.hierarchy.networks import AgentIdentity, ManagerNetwork, WorkerSpec
from himo.hierarchy.state import IS_INIT
from himo.hierarchy.selectors import OptionRules, OptionSelector
from himo.modalities.keyed import KeyedModule
from himo.modalities.vector import InputNorm


class GroupPolicy(TensorDictModuleBase):
    """The hierarchical policy of one agent group (its agents share these parameters).

    Args:
        group: the agent group.
        encoders: modality name -> encoder module writing ``(group, "embedding", modality)``.
        shared_encoders: observation key -> small encoder of a shared low-dimensional state.
        workers: the workers, in the manager's choice order.
        manager: the manager network, reading every modality's embedding; ``None`` for a single worker, where there is
            nothing to choose (a flat agent: the option is always that worker).
        actions: the group's action space (``himo.hierarchy.actions``).
        rules: the manager's mode and termination.
        agent_identity: writes the agents' one-hot index where workers and manager read it; ``None``: no agent-id input.
        legal_actions: the env gives each agent's legal actions at ``(group, "action_mask")`` (discrete actions).
        turn_based: the env says which agents act at each step at ``(group, "mask")``.
        goal: the manager's goal networks (one per worker) over every modality's embedding; ``None``: no goals.
            Workers built for goals read their own, ``(group, "workers", <worker>, "goal")``.
        critic_inputs: keys only the critics read, after their other inputs (global critics: the other groups'
            observations); workers and manager must be built for them (``CriticView.extra``).
    """

    def __init__(
        self,
        group: str,
        encoders: Mapping[str, TensorDictModuleBase],
        shared_encoders: Mapping[str, TensorDictModuleBase],
        workers: Sequence[WorkerSpec],
        manager: ManagerNetwork | None,
        actions: ActionSpace,
        rules: OptionRules,
        agent_identity: AgentIdentity | None = None,
        legal_actions: bool = False,
        turn_based: bool = False,
        goal: GoalNetwork | None = None,
        critic_inputs: Sequence[tuple[str, ...]] = (),
    ) -> None:
        super().__init__()
        self.group = group
        self.critic_inputs = list(critic_inputs)
        if manager is None and len(workers) > 1:
            raise ValueError(f"{len(workers)} workers need a manager network to choose among them")
        if manager is not None and bool(self.critic_inputs) != bool(manager.critic_extra):
            raise ValueError("critic-only inputs need a manager network built for them, and only then")
        self.legal_actions = legal_actions
        self.turn_based = turn_based
        self.goal = goal
        self.goal_inputs = [keys.embedding(group, modality) for modality in encoders]
        self.worker_names = [worker.name for worker in workers]
        self.encoders = nn.ModuleDict(encoders)
        # An encoder conditioned on another modality (himo.modalities.film) reads that one's embedding: it runs after.
        embeddings = {key for encoder in encoders.values() for key in encoder.out_keys}
        self.encoding_order = sorted(encoders, key=lambda name: bool(embeddings & set(encoders[name].in_keys)))
        self.shared_encoders = nn.ModuleDict({name.replace(".", "_"): module for name, module in shared_encoders.items()})
        self.memories = nn.ModuleDict(
            {worker.name: self._memory_module(worker) for worker in workers if worker.memory is not None}
        )
        self.workers = nn.ModuleDict(
            {
                worker.name: KeyedModule(
                    actions.worker_heads(
                        worker.input_size if worker.memory is None else worker.memory.size,
                        worker.hidden_sizes,
                        worker.allowed_actions,
                        worker.critic,
                    ),
                    in_keys=[
                        *(worker.inputs if worker.memory is None else [keys.worker(group, worker.name, keys.MEMORY)]),
                        *self.critic_inputs,
                    ],
                    out_keys=[*actions.worker_keys(worker.name), keys.worker(group, worker.name, keys.STATE_VALUE)],
                )
                for worker in workers
            }
        )
        if rules.learned != (manager is not None and manager.option_heads is not None):
            raise ValueError("learned termination needs a manager network with option-critic heads, and only it")
        self.rules = rules
        self.agent_identity = agent_identity
        self.manager = self._manager_module(manager, list(encoders)) if manager is not None else None
        self.actions = actions
        control = torch.stack([actions.control_mask(worker.controlled_parts) for worker in workers])
        self.selector = OptionSelector(group, self.worker_names, rules, actions, control, turn_based)
        # Built only to compute the declared keys; the modules stay registered once, above.
        manager_module = [self.manager] if self.manager is not None else []
        chain = TensorDictSequential(
            *self._encoding_modules(), *self.memories.values(), *self.workers.values(), *manager_module, self.selector
        )
        active_goal = keys.manager(group, keys.ACTIVE_GOAL)
        # Each worker's goal is written from the goal in force at the step, not read from the env.
        self.worker_goals = [keys.worker(group, name, keys.GOAL) for name in self.worker_names]
        self.in_keys = [key for key in chain.in_keys if key != active_goal and key not in self.worker_goals]
        self.in_keys += [keys.action_mask(group)] if legal_actions else []
        # What acting computes on the way to the action and learning recomputes from the observations: every
        # embedding, each worker's action distribution (and recurrent features) and the manager's scores. Acting drops
        # them before the collector stores the step, as every stored key costs in each env step, step_mdp and write of
        # the rollout (collection alone 1.03-1.04x without them: docs/benchmarks.md).
        self.acting_scratch = [(keys.EMBEDDING,)] if encoders or shared_encoders or agent_identity is not None else []
        self.acting_scratch += [key[1:] for worker in workers for key in actions.worker_keys(worker.name)]
        self.acting_scratch += [(keys.WORKERS, worker.name, keys.MEMORY) for worker in workers if worker.memory is not None]
        self.acting_scratch += [(keys.MANAGER, keys.LOGITS)] if manager is not None else []
        scratch = [(group, *key) for key in self.acting_scratch]
        self.out_keys = [key for key in chain.out_keys if not any(key[: len(drop)] == drop for drop in scratch)]
        if goal is not None:
            self.in_keys.append(keys.manager(group, keys.GOAL))
            self.out_keys += [active_goal, (keys.NEXT, *keys.manager(group, keys.GOAL))]

    def _manager_module(self, manager: ManagerNetwork, modalities: list[str]) -> KeyedModule:
        """The manager network with its keys: every modality's embedding (and the agent id, the critic-only inputs and
        its memory state) in; its scores and value (and termination logits and option values, and successor state)
        out."""
        group = self.group
        if (self.agent_identity is not None) != bool(manager.agent_id_size):
            raise ValueError("an agent-id input needs a manager network built for it, and only then")
        outputs = [keys.manager(group, keys.LOGITS), keys.manager(group, keys.STATE_VALUE)]
        if self.rules.learned:
            outputs += [keys.manager(group, keys.TERMINATION_LOGITS), keys.manager(group, keys.OPTION_VALUES)]
        inputs = [keys.embedding(group, modality) for modality in modalities]
        inputs += [keys.agent_id(group)] if self.agent_identity is not None else []
        inputs += self.critic_inputs
        if manager.memory is not None:
            state = [keys.manager(group, leaf) for leaf in manager.memory.state_leaves]
            inputs += [IS_INIT, *state]
            outputs += [(keys.NEXT, *key) for key in state]
        return KeyedModule(manager, in_keys=inputs, out_keys=outputs)

    def _memory_module(self, worker: WorkerSpec) -> KeyedModule:
        """The worker's recurrent core: its inputs and state in, what its heads read and its successor state out."""
        state = [keys.worker(self.group, worker.name, leaf) for leaf in worker.memory.state_leaves]
        return KeyedModule(
            worker.memory,
            in_keys=[*worker.inputs, IS_INIT, *state],
            out_keys=[keys.worker(self.group, worker.name, keys.MEMORY), *((keys.NEXT, *key) for key in state)],
        )

    @property
    def memory_states(self) -> list[tuple[str, ...]]:
        """The recurrent cores' state leaves under the group (the workers', then the manager's): what learning keeps
        of each step to re-run them."""
        found = [(keys.WORKERS, name, leaf) for name, core in self.memories.items() for leaf in core.module.state_leaves]
        manager = self.manager.module.memory if self.manager is not None else None
        return found + ([(keys.MANAGER, leaf) for leaf in manager.state_leaves] if manager is not None else [])

    @property
    def observed_keys(self) -> list[str]:
        """The group's entries the policy reads at a step, beside its option state: what learning keeps of a step."""
        return [keys.OBSERVATION, *([keys.ACTION_MASK] if self.legal_actions else [])]

    def _mask_illegal(self, tensordict: TensorDictBase) -> None:
        if not self.legal_actions:
            return
        legal = tensordict.get(keys.action_mask(self.group))
        for name in self.worker_names:
            (key,) = self.actions.worker_keys(name)
            tensordict.set(key, legal_logits(tensordict.get(key), legal))

    def _encoding_modules(self) -> list[TensorDictModuleBase]:
        identity = [self.agent_identity] if self.agent_identity is not None else []
        encoders = [self.encoders[name] for name in self.encoding_order]
        return [*encoders, *self.shared_encoders.values(), *identity]

    def encode(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Every modality's embedding and every shared state's embedding."""
        for module in self._encoding_modules():
            module(tensordict)
        return tensordict

    def evaluate(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Embeddings, every worker's logits and value, and the manager's outputs if it has one (no decision)."""
        self.evaluate_workers(tensordict)
        return self.manager(tensordict) if self.manager is not None else tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Encode, let the manager decide (and brief), then the workers' heads and the action; what learning recomputes
        (``acting_scratch``: embeddings, the workers' action distributions, the manager's scores) is not kept."""
        self.encode(tensordict)
        if self.manager is not None:
            self.manager(tensordict)
        self.selector.decide(tensordict)
        if self.goal is not None:
            self._brief(tensordict)
        self._run_workers(tensordict)
        self.selector.act(tensordict)
        own = tensordict.get(self.group)
        for key in self.acting_scratch:
            own.del_(key)
        return tensordict

    def goals(self, tensordict: TensorDictBase) -> torch.Tensor:
        """The goals ``[..., workers, size]`` each agent's decision would set from the embeddings in ``tensordict``
        (after :meth:`encode`)."""
        return self.goal(*(tensordict.get(key) for key in self.goal_inputs))

    def _brief(self, tensordict: TensorDictBase) -> None:
        """The goal in force: set anew where the manager decided (at every step with ``every_step`` goals), held from
        the state elsewhere."""
        state = keys.manager(self.group, keys.GOAL)
        if self.goal.every_step:
            in_force = self.goals(tensordict)
        else:
            decision = tensordict.get(keys.manager(self.group, keys.DECISION))[..., None, None]
            in_force = torch.where(decision, self.goals(tensordict), tensordict.get(state))
        tensordict.set(keys.manager(self.group, keys.ACTIVE_GOAL), in_force)
        tensordict.set((keys.NEXT, *state), in_force)

    def evaluate_workers(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Embeddings and every worker's logits and value (what the worker level learns through).

        With goals, each worker reads its own of ``(group, "manager", "active_goal")`` where it is set (learning sets
        the goals in force at each step), else of the goals held in the option state.
        """
        self.encode(tensordict)
        active = keys.manager(self.group, keys.ACTIVE_GOAL)
        if self.goal is not None and tensordict.get(active, None) is None:
            tensordict.set(active, tensordict.get(keys.manager(self.group, keys.GOAL)))
        self._run_workers(tensordict)
        return tensordict

    def _run_workers(self, tensordict: TensorDictBase) -> None:
        if self.goal is not None:
            active = tensordict.get(keys.manager(self.group, keys.ACTIVE_GOAL))
            for index, key in enumerate(self.worker_goals):
                tensordict.set(key, active[..., index, :])
        for name, worker in self.workers.items():
            if name in self.memories:
                self.memories[name](tensordict)
            worker(tensordict)
        self._mask_illegal(tensordict)

    def manager_inputs(self, tensordict: TensorDictBase) -> TensorDictBase:
        """What the manager reads of ``tensordict`` (its embeddings, computed without gradient), under the group.

        The manager's update changes none of the encoders, so its minibatch epochs read these instead of
        encoding the observations again at every pass.
        """
        with torch.no_grad():
            self.encode(tensordict)
        return tensordict.select(*self.manager.in_keys).get(self.group)

    def evaluate_manager(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The manager's outputs (scores, value, and termination logits and option values if learned).

        The embeddings it reads are computed without gradient.
        """
        with torch.no_grad():
            self.encode(tensordict)
        return self.manager(tensordict)

    def worker_model(self) -> LevelModel:
        """The worker level: the modality and shared-state encoders, the goal network (it learns through the workers'
        losses; held fixed by the builder when the manager is frozen), the workers' recurrent cores, every worker's
        actor and value heads."""
        heads = {name: worker.module for name, worker in self.workers.items()}
        goal = [self.goal] if self.goal is not None else []
        return LevelModel(
            encoder=parameters_of([*self.encoders.values(), *self.shared_encoders.values(), *goal, *self.memories.values()]),
            actor=parameters_of([head.actor for head in heads.values()]),
            critic=parameters_of([head.critic for head in heads.values()]),
            heads={name: head.shape() for name, head in heads.items()},
            head_parameters={name: parameters_of([head.actor, head.critic]) for name, head in heads.items()},
        )

    def input_norms(self) -> dict[tuple[str, ...], InputNorm]:
        """The encoders' input normalisers (``modalities.<m>.normalize``), by the observation key each reads."""
        found = {}
        for encoder in [*self.encoders.values(), *self.shared_encoders.values()]:
            for module in encoder.modules():
                if isinstance(module, InputNorm):
                    key = encoder.in_keys[0]
                    found[key if isinstance(key, tuple) else (key,)] = module
        return found

    def value_norms(self, level: str) -> dict[str, ValueNorm]:
        """The value normalisers of a level's heads (``"workers"``: by worker; ``"manager"``), where it has them."""
        if level == keys.WORKERS:
            heads = {name: worker.module for name, worker in self.workers.items()}
        else:
            heads = {"manager": self.manager.module.heads} if self.manager is not None else {}
        return {name: head.value_norm for name, head in heads.items() if head.value_norm is not None}

    def manager_model(self) -> LevelModel:
        """The manager level: the fusion (and its recurrent core), the scores over workers, the value head (and the
        termination and option-value heads of learned termination)."""
        network = self.manager.module
        critic_modules = [network.heads.critic, *([network.option_heads] if network.option_heads is not None else [])]
        return LevelModel(
            encoder=parameters_of([network.fusion, *([network.memory] if network.memory is not None else [])]),
            actor=parameters_of([network.heads.actor]),
            critic=parameters_of(critic_modules),
            heads={"manager": network.heads.shape()},
        )

    def soft_worker_outputs(self, tensordict: TensorDictBase) -> dict[str, SoftHeadOutputs]:
        """Every worker on the observations in ``tensordict``, as soft actor-critic learns it: the features its
        critics read (with gradient into the encoders) and its policy and value from the same features detached."""
        self.encode(tensordict)
        detached = tensordict.copy()  # new keys, shared tensors
        outputs = {}
        for worker in self.workers.values():
            for key in worker.in_keys:
                detached.set(key, tensordict.get(key).detach())
            worker(detached)
        self._mask_illegal(detached)
        for name, worker in self.workers.items():
            features = torch.cat([tensordict.get(key).float() for key in worker.in_keys], dim=-1)
            outputs[name] = SoftHeadOutputs(
                features=worker.module.critic_inputs(features),
                policy=self.actions.soft_policy(detached, name),
                value=detached.get(keys.worker(self.group, name, keys.STATE_VALUE)).squeeze(-1),
            )
        return outputs

    def soft_manager_outputs(self, tensordict: TensorDictBase) -> SoftHeadOutputs:
        """The manager on the observations in ``tensordict`` (``[..., agents]``), as soft actor-critic learns it: the
        features its critics read (with gradient into the fusion), its choice of worker and its value from them detached."""
        with torch.no_grad():
            self.encode(tensordict)
        network = self.manager.module
        inputs = [tensordict.get(key) for key in self.manager.in_keys]
        features = network.head_inputs(network.features(*inputs), *inputs)
        logits, value = network.heads(features.detach())[:2]
        return SoftHeadOutputs(
            features=network.heads.critic_inputs(features),
            policy=CategoricalPolicy(logits.log_softmax(-1)),
            value=value.squeeze(-1),
        )

    def worker_outputs(self, tensordict: TensorDictBase) -> dict[str, HeadOutputs]:
        """Every worker's policy evaluated on ``tensordict`` after :meth:`evaluate_workers`: the log-probability
        its actor learns through, its entropy and its value.

        In select mode a worker's log-probability is its own policy's (over the parts it controls): where it
        was the active option, that is the acting policy's. In weighted mode it is the acting policy's exact
        log-probability (the mixture, or the product of Gaussians, under the weights in force at the step,
        ``(group, "manager", "weights")``), with the other workers' outputs held constant: the gradient of the
        combined policy with respect to this worker's parameters.
        """
        action = self.actions.read(tensordict)
        policies = self.actions.worker_policies(tensordict, self.worker_names, self.selector.control)
        outputs = {}
        for name, policy in policies.items():
            log_prob = policy.log_prob(action) if self.rules.mode == "select" else self._combined_log_prob(tensordict, name, action)
            outputs[name] = HeadOutputs(
                log_prob=log_prob,
                entropy=policy.entropy(),
                value=tensordict.get(keys.worker(self.group, name, keys.STATE_VALUE)).squeeze(-1),
                distributions=policy.distributions,
                value_scale=self.workers[name].module.value_scale(),
            )
        return outputs

    def _combined_log_prob(self, tensordict: TensorDictBase, worker: str, action: torch.Tensor) -> torch.Tensor:
        view = tensordict.copy()  # new keys, shared tensors: the caller's outputs keep their gradients
        for other in self.worker_names:
            if other != worker:
                for key in self.actions.worker_keys(other):
                    view.set(key, tensordict.get(key).detach())
        option = tensordict.get(keys.manager(self.group, keys.OPTION))
        weights = tensordict.get(keys.manager(self.group, keys.WEIGHTS))
        return self.selector.acting(view, option, weights).log_prob(action)


class HierarchicalPolicy(TensorDictModuleBase):
    """One :class:`GroupPolicy` per agent group, applied in turn."""

    def __init__(self, groups: Mapping[str, GroupPolicy]) -> None:
        super().__init__()
        self.groups = nn.ModuleDict(groups)
        self.in_keys = sorted({key for policy in self.groups.values() for key in policy.in_keys}, key=str)
        self.out_keys = [key for policy in self.groups.values() for key in policy.out_keys]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Act for every group."""
        for policy in self.groups.values():
            policy(tensordict)
        return tensordict
