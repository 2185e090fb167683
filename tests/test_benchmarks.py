"""The benchmark scripts' scenario variants stay valid as the schema evolves."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))

from algorithms import ALGORITHMS, goal_of, scenario_of, scenario_overrides  # noqa: E402
from manager_algorithms import ALGORITHMS as MANAGER_ALGORITHMS  # noqa: E402
from manager_algorithms import arm_overrides, rises, window_mean  # noqa: E402
from text_finetuning import MODES, TASK, mode_overrides, trainable_text_parameters  # noqa: E402

from himo.scenarios.errors import ScenarioError  # noqa: E402
from himo.scenarios.loader import load  # noqa: E402


def test_every_algorithm_benchmark_run_loads_as_a_flat_scenario() -> None:
    for name, entry in ALGORITHMS.items():
        scenario = load(scenario_of(name), scenario_overrides(name, seed=1, frames=entry["frames"]))
        assert scenario.algorithm.workers.name == entry.get("algorithm", name)
        assert list(scenario.workers) == ["vector"] and scenario.train.seed == 1 and scenario.train.threads == 1
        assert scenario.train.frames == entry["frames"]
    assert scenario_of("sac-pendulum") == "pendulum" and goal_of("sac-pendulum") == -200.0 and goal_of("sac") == 475.0


def test_every_manager_algorithm_arm_loads_and_differs_only_in_the_frozen_manager() -> None:
    for name in MANAGER_ALGORITHMS:
        trained, frozen = (load("beacon", arm_overrides(name, arm, seed=3, frames=8192)) for arm in ("trained", "frozen"))
        assert trained.algorithm.manager.name == frozen.algorithm.manager.name == name
        assert not trained.algorithm.manager.frozen and frozen.algorithm.manager.frozen
        assert trained.algorithm.workers == frozen.algorithm.workers and not trained.algorithm.workers.frozen
        assert trained.train == frozen.train and trained.train.seed == 3 and trained.train.frames == 8192
        assert trained.train.threads == 1 and len(trained.workers) > 1


def test_manager_benchmark_windows_and_verdict() -> None:
    curve = [(frames, float(frames)) for frames in range(1, 11)]
    assert window_mean(curve, last=False) == 3.0 and window_mean(curve, last=True) == 8.0
    assert window_mean([], last=True) is None
    assert rises(first=0.10, last=0.20, control=0.12)
    assert not rises(first=0.10, last=0.20, control=0.19)  # within the absolute margin of the frozen arm
    assert not rises(first=1.00, last=1.15, control=0.50)  # +0.15 is under 20 % of its own start
    assert rises(first=-0.30, last=-0.10, control=-0.40)


def test_with_pretrained_workers_every_arm_freezes_them_and_only_the_trained_manager_learns() -> None:
    for name in MANAGER_ALGORITHMS:
        trained, frozen = (load("beacon", arm_overrides(name, arm, seed=0, frames=8192, workers="/runs/x/latest.pt"))
                           for arm in ("trained", "frozen"))
        for scenario in (trained, frozen):
            assert scenario.algorithm.workers.frozen and scenario.algorithm.workers.checkpoint == "/runs/x/latest.pt"
        assert not trained.algorithm.manager.frozen and frozen.algorithm.manager.frozen
        assert trained.algorithm.manager.name == name and trained.train == frozen.train


def test_gridworld_windows_count_whole_batches_until_enough_episodes() -> None:
    from gridworlds import WINDOW_EPISODES, first, windows

    half = WINDOW_EPISODES // 2
    episodes = [(1000, half, 0), (2000, half, half), (3000, half, half), (4000, WINDOW_EPISODES, WINDOW_EPISODES)]
    returns = [(1000, 0.0), (2000, 0.5), (3000, 0.7), (4000, 0.9)]
    points = windows(episodes, returns)
    assert [point["episodes"] for point in points] == [half, 2 * half, 3 * half, 3 * half + WINDOW_EPISODES]
    assert [point["full"] for point in points] == [False, True, True, True]
    assert points[1]["success"] == 0.5 and points[2]["success"] == 1.0 and points[3]["success"] == 1.0
    assert points[1]["return"] == 0.25 and points[2]["return"] == 0.6 and points[3]["return"] == 0.9
    assert first(points, "success", 0.99)["frames"] == 3000
    assert first(points, "return", 0.95) is None


def test_every_gridworld_task_loads_with_a_success_threshold() -> None:
    from gridworlds import TASKS

    for task in TASKS.values():
        scenario = load(task["scenario"])
        assert scenario.env.success_above == 0.0
        assert task["frames"] % scenario.train.frames_per_batch == 0


def test_speed_contenders_share_the_settings_and_differ_in_workers() -> None:
    from peers.settings import PPOSettings
    from ppo_speed import himo_overrides

    settings = PPOSettings(frames=4096, lr=1.0e-3)
    flat, hierarchical = (load("cartpole", himo_overrides(settings, hierarchical)) for hierarchical in (False, True))
    assert list(flat.workers) == ["vector"] and list(hierarchical.workers) == ["a", "b", "c"]
    for scenario in (flat, hierarchical):
        for section in (scenario.algorithm.workers, scenario.algorithm.manager):
            assert section.name == "ppo" and section.lr == 1.0e-3 and section.epochs == settings.epochs
            assert section.minibatch_size == settings.minibatch_size and section.max_grad_norm == settings.max_grad_norm
        assert scenario.env.num_envs == settings.num_envs and scenario.train.frames == 4096
        assert scenario.modalities["vector"].hidden_sizes == (64, 64) and scenario.modalities["vector"].embedding_dim == 64
    assert hierarchical.manager.termination.every == 4


def test_plain_torchrl_contender_trains_and_reports(tmp_path) -> None:
    from peers.settings import PPOSettings
    from peers.torchrl_ppo import train

    result = train(PPOSettings(frames=2048, frames_per_batch=512, num_envs=4))
    assert result["frames"] == 2048 and result["fps"] > 0 and result["final_return"] > 0
    assert result["parameters"] == 25_475  # encoder 8,640 + actor head 8,450 + value head 8,385: one shared encoder


def test_handwritten_contender_learns_with_the_same_network_as_the_torchrl_script() -> None:
    from peers.handwritten_ppo import train
    from peers.settings import PPOSettings

    short, longer = (train(PPOSettings(frames=frames, num_envs=8)) for frames in (1024, 16384))
    assert short["frames"] == 1024 and longer["frames"] == 16384 and longer["fps"] > 0
    assert longer["parameters"] == 25_475  # the same encoder and heads as every other contender
    # CartPole: a random policy lasts about 22 steps; 16 batches of PPO more than double that.
    assert short["final_return"] < 40.0 and longer["final_return"] > 2 * short["final_return"]


def test_speed_goals_apply_to_their_number_of_envs_and_to_contenders_that_ran() -> None:
    from ppo_speed import ratios_and_goals

    medians = {"himo-hierarchical": 900.0, "himo-flat": 1000.0, "torchrl": 600.0, "sb3": 1100.0}
    ratios, met = ratios_and_goals(medians, envs=8)
    assert ratios == {"himo-hierarchical / himo-flat": 0.9, "himo-flat / torchrl": 1000.0 / 600.0}
    assert met == {"himo-hierarchical / himo-flat": True, "himo-flat / torchrl": True}
    ratios, met = ratios_and_goals(medians, envs=64)
    assert set(ratios) == {"himo-hierarchical / himo-flat", "himo-flat / sb3"} and met["himo-flat / sb3"] is False
    assert ratios_and_goals({"himo-flat": 1.0}, envs=8) == ({}, {})


def test_time_shares_are_each_himo_contenders_median_share_of_its_runs() -> None:
    from ppo_speed import time_shares

    runs = [{"seconds": {"run": run, "collect": collect, "learn/workers": run - collect}} for run, collect in
            ((10.0, 6.0), (20.0, 10.0), (10.0, 7.0))]
    shares = time_shares({"himo-flat": runs, "sb3": [{"fps": 1.0}], "torchrl": []})
    assert shares == {"himo-flat": {"collect": 0.6, "learn/workers": 0.4}}


def test_device_check_trains_the_built_in_world_and_refuses_a_missing_device(capsys) -> None:
    import pytest
    import torch
    from device_check import main

    result = main(["--device", "cpu", "--frames", "2048", "--set", "env.num_envs=8"])
    assert result["device"] == "cpu" and result["overrides"] == ["env.num_envs=8"] and result["frames"] >= 2048
    assert result["fps"] > 0 and result["peak_rss_mib"] > 0
    assert "RESULT " in capsys.readouterr().out
    # The overrides reach the scenario: one it cannot take is refused, naming the field.
    with pytest.raises(ScenarioError, match="num_envs"):
        main(["--device", "cpu", "--frames", "2048", "--set", "env.num_envs=0"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            main(["--device", "cuda", "--frames", "2048"])


def test_every_scaling_configuration_loads() -> None:
    from scaling import configurations

    runs = configurations("/models/minilm")
    assert {run["axis"] for run in runs} == {"envs", "agents", "modalities", "text-cache"}
    for run in runs:
        scenario = load(run["scenario"], run["overrides"])
        if run["axis"] == "modalities":
            assert len(scenario.modalities) == len(scenario.workers) == run["value"]
        if run["axis"] == "text-cache":
            assert scenario.modalities["text"].frozen and scenario.modalities["text"].cache == (run["value"] == "on")


def test_gridworld_verdicts_use_the_median_over_seeds_and_count_misses_as_beyond_the_budget() -> None:
    from gridworlds import summarise

    def run(seed: int, episodes: int | None, greedy_return: float) -> dict:
        return {"task": "gotoredball", "seed": seed, "frames": 1000, "episodes_to_success": episodes,
                "frames_to_return": None, "final_success": 0.99, "final_return": 0.9, "greedy_success": 1.0,
                "greedy_return": greedy_return}

    fast = summarise("gotoredball", [run(0, 7000, 0.9), run(1, 9000, 0.9), run(2, None, 0.9)])
    assert fast["median_episodes_to_success"] == 9000 and fast["goal_met"]
    slow = summarise("gotoredball", [run(0, 7000, 0.9), run(1, None, 0.9), run(2, None, 0.9)])
    assert slow["median_episodes_to_success"] is None and not slow["goal_met"]
    doorkey = [{**run(seed, None, value), "task": "doorkey"} for seed, value in enumerate((0.96, 0.59, 0.97))]
    assert summarise("doorkey", doorkey)["median_greedy_return"] == 0.96 and summarise("doorkey", doorkey)["goal_met"]


def test_commit_speed_exports_a_commit_whose_packages_import_from_its_own_tree(tmp_path: Path) -> None:
    import os
    import subprocess

    from commit_speed import export

    path = export("HEAD", tmp_path)
    probe = "import himo.hierarchy.policy as module; print(module.__file__)"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path,
                               env=dict(os.environ, PYTHONPATH=str(path)))
    assert completed.stdout.strip() == str(path / "himo" / "hierarchy" / "policy.py")


def test_beacon_diagnosis_splits_the_episodes_by_how_they_ended_and_measures_each_workers_goal(tmp_path: Path) -> None:
    from beacon_diagnosis import endings, mission_separation

    from himo.scenarios.run import train

    overrides = ["env.num_envs=4", "env.kwargs.max_steps=8", "train.frames=256", "train.frames_per_batch=256",
                 "algorithm.workers.epochs=1", "algorithm.manager.epochs=1", "manager.goal={size: 4}", f"log.dir={tmp_path}"]
    folder = train(load("beacon", overrides), progress=False).folder
    shares, left_behind = endings(folder, episodes=8)
    assert set(shares) == {"success", "wrong beacon", "lava", "step limit"}
    assert set(left_behind) == {f"{worker} {outcome}" for worker in ("image", "text", "audio") for outcome in ("arrived", "not arrived")}
    # Two agents per episode at the step limit (8 steps here).
    assert sum(left_behind.values()) == 2 * round(shares["step limit"] * 8)
    # Every episode ends one way (two agents may end it two ways at once: at most one per agent).
    assert 1.0 <= sum(shares.values()) <= 2.0 and all(0.0 <= share <= 1.0 for share in shares.values())
    separation = mission_separation(folder)
    assert separation is not None and set(separation) == {"image", "text", "audio"}
    assert all(value >= 0.0 for value in separation.values())


def test_every_memory_variant_loads_and_only_the_recurrent_one_remembers() -> None:
    from memory import TASKS, VARIANTS, variant_overrides

    for task in TASKS.values():
        for variant in VARIANTS:
            scenario = load(task["scenario"], variant_overrides(task["scenario"], variant))
            cores = [worker.memory for worker in scenario.workers.values()] + [scenario.manager.memory]
            remembering = [core for core in cores if core is not None]
            expected = len(scenario.workers) + (len(scenario.workers) > 1) if variant == "recurrent" else 0
            assert len(remembering) == expected, (task, variant)


def test_memory_results_merge_by_task_variant_and_seed() -> None:
    from memory import merge

    def run(seed: int, success: float) -> dict:
        return {"task": "doorkey", "variant": "recurrent", "seed": seed, "frames": 100, "greedy_success": success,
                "training_success": success, "greedy_return": success, "fps": 1.0}

    first = merge({}, [run(1, 0.5), run(0, 0.25)], "aaa")
    assert first["tasks"]["doorkey"]["recurrent"]["seeds"] == [0, 1]
    assert first["tasks"]["doorkey"]["recurrent"]["greedy_success"] == [0.25, 0.5]
    second = merge(first, [run(1, 0.75), {**run(2, 0.0), "error": "boom"}], "bbb")
    line = second["tasks"]["doorkey"]["recurrent"]
    assert line["seeds"] == [0, 1] and line["greedy_success"] == [0.25, 0.75] and line["commit"] == ["aaa", "bbb"]
    assert second["frames"] == {"doorkey": 100}


def test_mappo_peer_trains_on_simple_spread_with_the_scenarios_settings() -> None:
    from peers.torchrl_mappo import MappoSettings, train

    settings = MappoSettings(frames=400, frames_per_batch=200, minibatch_size=100, epochs=1, num_envs=2)
    result = train(settings)
    assert result["frames"] == 400 and result["fps"] > 0 and len(result["curve"]) == 2  # 25-step episodes end in each batch
    # The built-in scenario trains with the peer's settings (a minibatch counts agent-steps in himo, env steps there).
    scenario = load("simple-spread")
    workers, defaults = scenario.algorithm.workers, MappoSettings()
    assert (workers.lr, workers.epochs, workers.max_grad_norm, workers.gae_lambda, workers.entropy_coef) == (
        defaults.lr, defaults.epochs, defaults.max_grad_norm, defaults.gae_lambda, defaults.entropy_coef
    )
    assert workers.minibatch_size == defaults.minibatch_size * defaults.agents
    assert (scenario.train.frames, scenario.train.frames_per_batch, scenario.env.num_envs) == (
        defaults.frames, defaults.frames_per_batch, defaults.num_envs
    )
    assert scenario.multi_agent.critic == "centralised"


def test_every_text_finetuning_mode_builds_and_trains_what_it_says(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel, BertTokenizer

    from himo.envs.vocabularies import MINIGRID_WORDS

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *MINIGRID_WORDS]
    BertTokenizer(vocab={word: index for index, word in enumerate(words)}).save_pretrained(tmp_path)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(tmp_path)
    trainable = {mode: trainable_text_parameters(load(TASK, mode_overrides(mode, str(tmp_path)))) for mode in MODES}
    assert trainable["frozen"] == 0
    assert 0 < trainable["lora"] < trainable["full"]
    assert trainable["lora"] == trainable["lora+bf16"] == trainable["lora+bf16+checkpointing"]
    assert load(TASK, mode_overrides("lora+bf16", str(tmp_path))).train.precision == "bf16"
