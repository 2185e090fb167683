"""The scenario schema: every field a scenario file may hold, with its type, default and description.

This module is the one definition of the scenario file. The scenario reference (docs/reference/scenario.md) and the
``himo show --help`` field list are generated from it (``himo.scenarios.reference``). A loaded scenario
is frozen: models reject attribute assignment, mappings are read-only and lists are tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from himo.agents.declaration import Collection, Targets
from himo.agents.registry import ALGORITHMS, collections_of
from himo.envs.registry import split_env_id
from himo.envs.rewards import REWARD_FUNCTIONS, REWARD_LIMIT
from himo.scenarios.algorithms import AlgorithmConfig
from himo.scenarios.errors import FieldProblem
from himo.scenarios.schema_base import FrozenMapping, Section
from himo.scenarios.schema_levels import ManagerConfig, MemoryConfig
from himo.scenarios.tune_space import TuneConfig
from himo.modalities.registry import ENCODERS


EncoderConfigUnion = Annotated[Union[tuple(ENCODERS.values())], Field(discriminator="encoder")]
RewardFunctionConfigUnion = Annotated[Union[tuple(REWARD_FUNCTIONS.values())], Field(discriminator="function")]
RewardWeight = Annotated[float, Field(ge=-REWARD_LIMIT, le=REWARD_LIMIT)]
"""A weight of a worker's reward mix: finite (as every float of a section) and of magnitude at most 1e6."""


class EnvConfig(Section):
    """Which environment to run and how many copies to step at once."""

    id: str = Field(
        description="Environment as family/name: himo/<name>, gymnasium/<id> (or gymnasium/<module>:<id> to import "
        "the module that registers it), pettingzoo/<module> or python/<module>:<callable> (a factory returning a "
        "Gymnasium, PettingZoo or TorchRL env)."
    )
    python_path: tuple[str, ...] = Field(
        (),
        description="Folders put at the front of the import path before the env is built, so that a module of your "
        "own imports; relative to the scenario file that names them (to the working folder in --set). A run saves "
        "them resolved, so himo eval and himo resume find the module again.",
    )
    kwargs: FrozenMapping(Any) = Field(default_factory=dict, description="Keyword arguments passed to the environment.")
    num_envs: int = Field(8, ge=1, le=4096, description="Environments advanced together in one batched step.")
    success_above: float | None = Field(
        None,
        description="An episode succeeds when its team return (env reward) is above this (MiniGrid and BabyAI: 0); "
        "logs episode/success_rate. null: the env's own success signal where it reports one (the built-in world: "
        "every agent reached its beacon), else no success measure.",
    )

    @field_validator("id")
    @classmethod
    def _known_family(cls, value: str) -> str:
        split_env_id(value)
        return value


class WorkerConfig(Section):
    """One specialist worker: what it perceives, what it is rewarded for and what it may do."""

    modalities: tuple[str, ...] | None = Field(
        None, description="Modalities the worker's encoder reads; default: the modality named like the worker."
    )
    shared: tuple[str, ...] = Field(
        (), description="Extra low-dimensional observation keys the worker also reads (e.g. direction)."
    )
    reward: FrozenMapping(RewardWeight) = Field(
        default_factory=lambda: {"env": 1.0},
        description="Reward channel as weights over reward components; 'env' is the team reward. Each weight is "
        "-1e6 to 1e6.",
    )
    actions: tuple[str | int, ...] | None = Field(
        None, description="Subset of discrete actions (names or indices) the worker may take; default: all."
    )
    parts: tuple[str, ...] | None = Field(
        None,
        min_length=1,
        description="Named parts of a composite action the worker acts on; the others take their default "
        "(index 0) while it acts. Default: every part.",
    )
    hidden: tuple[Annotated[int, Field(ge=1)], ...] = Field(
        (64, 64), min_length=1, description="Hidden layer sizes of the worker's actor and critic."
    )
    memory: MemoryConfig | None = Field(
        None, description="A recurrent core between the worker's inputs and its heads; null: it acts on each step alone."
    )


class MultiAgentConfig(Section):
    """How the agents of one group share their policy (agents of a group always share parameters)."""

    critic: Literal["local", "centralised", "global"] = Field(
        "local",
        description="local: each agent's critics read its own observation (IPPO-style); centralised: every critic "
        "(workers' and manager's) also reads the whole group's embeddings (MAPPO-style); global: centralised, and "
        "every critic also reads every other agent group's vector observations (the keys of mlp modalities and "
        "shared states; groups may differ in shape). Actors stay decentralised.",
    )
    agent_id: bool = Field(False, description="Append each agent's one-hot index in its group to every actor's and critic's input.")


class TrainConfig(Section):
    """The training run."""

    frames: int = Field(300_000, ge=1, description="Environment frames to train for.")
    frames_per_batch: int = Field(2048, ge=1, description="Frames collected per batch (all envs together).")
    gamma: float = Field(0.99, gt=0.0, le=1.0, description="Discount factor.")
    # NumPy's global generator takes seeds below 2**32, the narrowest of the generators seeded.
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of every random generator of the run, 0 to 2**32 - 1.")
    device: str = Field("cpu", description="Torch device for the policy and learning.")
    threads: int = Field(
        1, ge=1, le=1024, description="Torch intra-op threads, 1 to 1024 (1 is fastest for small networks)."
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: every encoder's forward runs under autocast in bfloat16 (CPU or CUDA), its embedding handed "
        "on in float32; heads, losses and optimiser state stay float32.",
    )
    actors: int = Field(
        1,
        ge=1,
        le=64,
        description="impala: actor processes collecting asynchronously; a3c: actor-learner processes; each with "
        "env.num_envs envs of its own (the other algorithms collect in the training process).",
    )
    backend: Literal["local", "ray"] = Field(
        "local",
        description="Where the envs are stepped. local: in this process (impala: in train.actors processes); ray: in "
        "train.collectors Ray actors, each with env.num_envs envs and a copy of the policy refreshed after every "
        "update (impala: each actor's batches arrive as they are ready). a3c stays local.",
    )
    collectors: int = Field(
        1, ge=1, le=1024, description="Backend ray: collector actors, each taking one CPU of the Ray cluster."
    )
    ray_address: str | None = Field(
        None,
        description="Backend ray: null starts a Ray runtime on this machine; 'auto' or host:port joins a running "
        "cluster (started with `ray start`).",
    )

    @model_validator(mode="after")
    def _ray_fields_need_ray(self) -> TrainConfig:
        if self.backend == "local" and (self.collectors != 1 or self.ray_address is not None):
            field = "collectors" if self.collectors != 1 else "ray_address"
            raise FieldProblem((field,), f"train.{field} is for backend ray; set train.backend: ray, or drop it")
        if self.backend == "ray" and self.actors != 1:
            raise FieldProblem(
                ("actors",), "with backend ray, train.collectors sets how many actors collect (set train.actors: 1)"
            )
        return self


class LogConfig(Section):
    """Where the run writes, and how often."""

    dir: str = Field("runs", description="Folder holding one sub-folder per run.")
    checkpoint_every: int = Field(50_000, ge=1, description="Frames between checkpoints.")
    keep_checkpoints: int = Field(
        3, ge=1, description="Newest checkpoints kept; older ones are deleted once a new one is written."
    )
    eval_every: int | None = Field(
        None,
        ge=1,
        description="Frames between evaluations during training: the greedy and the sampling policy, each on "
        "eval_episodes fresh episodes (the same ones every time), logged as eval/... and eval/sampled/...; null: none.",
    )
    eval_episodes: int = Field(10, ge=1, description="Episodes per evaluation (log.eval_every).")
    media_every: int | None = Field(
        None,
        ge=1,
        description="Frames between episode media: one greedy episode of the first agent of each group, its image "
        "modalities as an animation, its audio modalities as sound and the manager's choices and goals per step as a "
        "table (media/<group>/...); null: none.",
    )


class Scenario(Section):
    """A whole experiment."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Scenario name (used in run folders).")
    description: str = Field("", description="One line shown by `himo list`.")
    env: EnvConfig = Field(description="The environment.")
    modalities: FrozenMapping(EncoderConfigUnion) = Field(
        min_length=1, description="Modalities by name, each with its observation key and encoder."
    )
    rewards: FrozenMapping(RewardFunctionConfigUnion) = Field(
        default_factory=dict,
        description="Reward functions by component name, usable in workers' reward mixes; each with its function "
        "and that function's parameters.",
    )
    workers: FrozenMapping(WorkerConfig) = Field(
        default_factory=dict, description="Workers by name; default: one worker per modality."
    )
    manager: ManagerConfig = Field(
        default_factory=ManagerConfig,
        description="The manager. With a single worker none is built (nothing to choose): its goals and termination "
        "interval still apply.",
    )
    multi_agent: MultiAgentConfig = Field(
        default_factory=MultiAgentConfig, description="Parameter sharing within a group: critics and agent id."
    )
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig, description="Algorithm per level.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="The training run.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging and checkpoints.")
    tune: TuneConfig | None = Field(
        None, description="The search space and objective of `himo tune` (ignored by the other commands); null: none."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_workers(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not data.get("workers") and isinstance(data.get("modalities"), Mapping):
            return {**data, "workers": {name: {} for name in data["modalities"]}}
        return data

    @model_validator(mode="after")
    def _workers_read_known_modalities(self) -> Scenario:
        for worker_name, worker in self.workers.items():
            for modality in worker.modalities or (worker_name,):
                if modality not in self.modalities:
                    path = ("workers", worker_name) + (("modalities",) if worker.modalities else ())
                    raise FieldProblem(path, f"no modality named {modality!r}; modalities are {sorted(self.modalities)}")
        return self

    @model_validator(mode="after")
    def _conditions_name_other_modalities(self) -> Scenario:
        for name, modality in self.modalities.items():
            condition = modality.conditioned_on
            if condition is None:
                continue
            path = ("modalities", name, "condition")
            if condition == name:
                raise FieldProblem(path, "a modality cannot condition itself: name another modality, e.g. the mission")
            if condition not in self.modalities:
                raise FieldProblem(path, f"no modality named {condition!r}; modalities are {sorted(self.modalities)}")
            # One level only: the conditioning embedding is computed before every conditioned encoder runs.
            if self.modalities[condition].conditioned_on is not None:
                raise FieldProblem(
                    path,
                    f"modality {condition!r} is itself conditioned (on {self.modalities[condition].conditioned_on!r}): "
                    f"condition on a modality that is not",
                )
        return self

    @model_validator(mode="after")
    def _algorithms_fit_together(self) -> Scenario:
        levels = {"workers": self.algorithm.workers}
        if self.has_manager:
            levels["manager"] = self.algorithm.manager
        trained = {level: config for level, config in levels.items() if not config.frozen}
        collections = {level: ALGORITHMS[config.name].collection for level, config in trained.items()}
        if len(set(collections.values())) > 1:
            (first, first_collection), (other, other_collection) = list(collections.items())[:2]
            raise FieldProblem(
                ("algorithm", other, "name"),
                f"the {first} level learns with {trained[first].name} ({first_collection.value}) but the {other} "
                f"level's {trained[other].name} {other_collection.value}; use algorithms of one kind at both "
                f"levels (or freeze one level)",
            )
        # A frozen level still runs in its algorithm's process layout (see himo.scenarios.collection).
        layouts = collections_of(*(config.name for config in levels.values()))
        if self.train.backend == "ray" and Collection.LAGGED not in layouts and self.train.frames_per_batch % self.train.collectors:
            raise FieldProblem(
                ("train", "frames_per_batch"),
                f"with backend ray, each of the {self.train.collectors} collectors gives an equal share of every batch: "
                f"make train.frames_per_batch ({self.train.frames_per_batch}) a multiple of train.collectors",
            )
        if self.train.backend == "ray" and Collection.ASYNCHRONOUS in layouts:
            raise FieldProblem(
                ("train", "backend"),
                "a3c's actor-learners compute gradients next to their envs and apply them to one policy in shared "
                "memory, which needs one machine: it runs with backend local (train.actors sets its processes)",
            )
        if self.train.actors > 1 and not any(layout.uses_actor_processes for layout in layouts):
            raise FieldProblem(
                ("train", "actors"),
                "several actor processes are for impala and a3c; the other algorithms learn from data collected "
                "with the current policy in the training process (set train.actors: 1)",
            )
        return self

    @model_validator(mode="after")
    def _algorithms_can_do_what_is_asked(self) -> Scenario:
        manager, workers = ALGORITHMS[self.algorithm.manager.name], ALGORITHMS[self.algorithm.workers.name]
        if self.has_manager:
            if self.manager.mode == "weighted" and not manager.weighted_manager:
                raise FieldProblem(
                    ("algorithm", "manager", "name"),
                    f"a {manager.name} manager cannot learn weighted mode ({manager.refusal}): use mode select, or "
                    f"another manager algorithm",
                )
            if self.manager.termination.kind == "learned" and not manager.learned_termination:
                raise FieldProblem(
                    ("algorithm", "manager", "name"),
                    f"a {manager.name} manager cannot learn learned termination ({manager.refusal}): use interval "
                    f"termination, or another manager algorithm",
                )
        if self.manager.goal is not None and workers.targets is Targets.REPLAY:
            raise FieldProblem(
                ("manager", "goal"),
                f"goals learn through the workers' losses, recomputed from the observation at each option's decision; "
                f"{workers.name} workers learn from replayed single steps without it: use an on-policy worker algorithm, "
                f"or no goal",
            )
        if self.manager.intra_option and workers.targets is Targets.REPLAY:
            raise FieldProblem(
                ("manager", "intra_option"),
                f"{workers.name} workers already learn from every step (replayed, whichever worker acted): set "
                f"intra_option false",
            )
        if self.manager.intra_option and any(worker.parts is not None for worker in self.workers.values()):
            raise FieldProblem(
                ("manager", "intra_option"),
                "intra-option learning compares each worker's probability of the whole action with the acting one's; "
                "workers acting on parts of a composite action have none: drop their parts, or intra_option",
            )
        if not workers.composite_actions:
            for name, worker in self.workers.items():
                if worker.parts is not None:
                    raise FieldProblem(
                        ("workers", name, "parts"),
                        f"{workers.name} workers cannot act on parts of a composite action ({workers.refusal}); "
                        f"use another worker algorithm",
                    )
        return self

    @model_validator(mode="after")
    def _memory_can_be_learned(self) -> Scenario:
        remembering = {("workers", name): worker.memory for name, worker in self.workers.items() if worker.memory}
        if self.manager.memory is not None and self.has_manager:
            remembering[("manager",)] = self.manager.memory
        for path, memory in remembering.items():
            level = path[0]
            algorithm = ALGORITHMS[getattr(self.algorithm, level).name]
            if algorithm.targets is Targets.REPLAY:
                raise FieldProblem(
                    (*path, "memory"),
                    f"{algorithm.name} learns from replayed single steps, and a recurrent core needs whole sequences: "
                    f"use an on-policy algorithm for the {level}, or no memory",
                )
            steps = self.steps_per_batch
            if memory.chunk is not None and steps % memory.chunk:
                raise FieldProblem(
                    (*path, "memory", "chunk"),
                    f"each env gives a batch {steps} steps (train.frames_per_batch / env.num_envs"
                    f"{' / train.collectors' if self.train.backend == 'ray' else ''}): make the chunk divide {steps}",
                )
        chunks = {memory.chunk for path, memory in remembering.items() if path[0] == "workers"}
        if len(chunks) > 1:
            raise FieldProblem(
                ("workers",),
                f"the workers learn in shared minibatches of sequences: give every worker's memory the same chunk "
                f"(got {sorted(chunks, key=str)})",
            )
        return self

    @property
    def has_manager(self) -> bool:
        """Whether a manager is built and learns: more than one worker to choose among (a single worker is a flat
        agent, with no manager network)."""
        return len(self.workers) > 1

    @property
    def steps_per_batch(self) -> int:
        """Consecutive steps each env gives a batch (a Ray collector of synchronous algorithms gives its share)."""
        lagged = Collection.LAGGED in collections_of(self.algorithm.workers.name, self.algorithm.manager.name)
        shares = self.train.collectors if self.train.backend == "ray" and not lagged else 1
        return max(1, self.train.frames_per_batch // (self.env.num_envs * shares))

    @model_validator(mode="after")
    def _rewards_do_not_shadow_the_team_reward(self) -> Scenario:
        if "env" in self.rewards:
            raise FieldProblem(("rewards", "env"), "'env' is the team reward; give the reward function another name")
        return self

    def worker_modalities(self, worker_name: str) -> tuple[str, ...]:
        """Modalities that worker ``worker_name`` reads."""
        return self.workers[worker_name].modalities or (worker_name,)
