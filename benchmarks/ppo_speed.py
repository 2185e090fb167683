"""Training speed of PPO on CartPole-v1: himo (hierarchical and flat), plain TorchRL, Stable-Baselines3, a hand-written loop.

Every contender trains the same env with the same PPO hyper-parameters and network sizes
(``peers.settings.PPOSettings``), each run in a fresh process on one torch thread, the
contenders interleaved ``--repeats`` times so all see the same machine load, at each number of
environments of ``--envs``. Frames per second count collection and learning (setup excluded);
peak memory is the child process's peak resident set. Prints a table, the ratios and whether
the goals were met, and ends with one line ``RESULT {json}``.

    python benchmarks/ppo_speed.py --frames 50176 --repeats 3 --envs 8 64

Contenders: ``himo-hierarchical`` (the ``cartpole`` scenario with three vector workers and a
PPO manager choosing one every 4 steps), ``himo-flat`` (the ``cartpole`` scenario: one worker),
``torchrl`` (``peers/torchrl_ppo.py``), ``sb3`` (``peers/sb3_ppo.py``, the ``bench`` extra) and
``handwritten`` (``peers/handwritten_ppo.py``: plain tensors, the limit).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
from dataclasses import replace

from benchmarks_common import print_child_result, run_in_child
from peers.settings import PPOSettings

CONTENDERS = ("himo-hierarchical", "himo-flat", "torchrl", "sb3", "handwritten")
GOALS: dict[tuple[str, int | None], float] = {
    ("himo-hierarchical / himo-flat", None): 0.85,
    ("himo-flat / sb3", 64): 1.0,
    ("himo-flat / torchrl", 8): 1.5,
}
"""``(ratio of median frames per second, number of envs or None for every number)`` -> the least it should be."""


def himo_overrides(settings: PPOSettings, hierarchical: bool) -> list[str]:
    """``--set`` overrides of the ``cartpole`` scenario that give it the shared settings."""
    ppo = (f"{{name: ppo, lr: {settings.lr}, epochs: {settings.epochs}, minibatch_size: {settings.minibatch_size}, "
           f"clip_epsilon: {settings.clip_epsilon}, gae_lambda: {settings.gae_lambda}, "
           f"entropy_coef: {settings.entropy_coef}, value_coef: {settings.value_coef}, "
           f"max_grad_norm: {settings.max_grad_norm}}}")
    *hidden, embedding = settings.encoder_sizes
    overrides = [
        f"env.num_envs={settings.num_envs}", f"train.frames={settings.frames}",
        f"train.frames_per_batch={settings.frames_per_batch}", f"train.gamma={settings.gamma}",
        f"train.seed={settings.seed}", "train.threads=1", f"algorithm.workers={ppo}", f"algorithm.manager={ppo}",
        f"modalities.vector.hidden_sizes={list(hidden)}", f"modalities.vector.embedding_dim={embedding}",
    ]
    worker = f"{{modalities: [vector], hidden: {list(settings.head_sizes)}}}"
    if hierarchical:
        overrides += [f"workers={{a: {worker}, b: {worker}, c: {worker}}}",
                      "manager.termination={kind: interval, every: 4}"]
    else:
        overrides += [f"workers={{vector: {worker}}}"]
    return overrides


def train_himo(settings: PPOSettings, hierarchical: bool) -> dict:
    """Train the ``cartpole`` scenario; its frames per second and the last batches' mean episode return."""
    from himo.scenarios.build import build_env, build_policy
    from himo.scenarios.loader import load
    from himo.scenarios.run import train

    with tempfile.TemporaryDirectory() as folder:
        scenario = load("cartpole", [*himo_overrides(settings, hierarchical), f"log.dir={folder}"])
        parameters = sum(parameter.numel() for parameter in build_policy(scenario, build_env(scenario)).parameters())
        run = train(scenario, progress=False)
    last = [value for _, value in run.returns[-3:]]
    return {"frames": run.frames, "fps": run.fps, "final_return": sum(last) / max(len(last), 1),
            "parameters": parameters, "seconds": run.seconds}


def run_one(spec: dict) -> dict:
    """One contender's run in this process (the child side of ``run_in_child``)."""
    import torch

    torch.set_num_threads(1)
    settings = PPOSettings(**{**spec["settings"], "encoder_sizes": tuple(spec["settings"]["encoder_sizes"]),
                              "head_sizes": tuple(spec["settings"]["head_sizes"])})
    if spec["contender"] == "torchrl":
        from peers.torchrl_ppo import train
        result = train(settings)
    elif spec["contender"] == "sb3":
        from peers.sb3_ppo import train
        result = train(settings)
    elif spec["contender"] == "handwritten":
        from peers.handwritten_ppo import train
        result = train(settings)
    else:
        result = train_himo(settings, hierarchical=spec["contender"] == "himo-hierarchical")
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {**spec, **result, "peak_rss_mib": peak_rss_mib}


def time_shares(done: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per himo contender: the median share of its runs' wall-clock time spent in each phase (collection, each level's
    learning; ``TrainResult.seconds``), which says what dominates what is left."""
    shares = {}
    for name, runs in done.items():
        if runs and "seconds" in runs[0]:
            phases = [phase for phase in runs[0]["seconds"] if phase != "run"]
            shares[name] = {phase: statistics.median(run["seconds"][phase] / run["seconds"]["run"] for run in runs) for phase in phases}
    return shares


def ratios_and_goals(medians: dict[str, float], envs: int) -> tuple[dict[str, float], dict[str, bool]]:
    """Every goal's ratio among ``medians`` (one number of envs), and whether it is met; goals for another number of
    envs, or naming a contender that did not run, are left out."""
    ratios, met = {}, {}
    for (label, only), least in GOALS.items():
        top, bottom = label.split(" / ")
        if only not in (None, envs) or top not in medians or bottom not in medians:
            continue
        ratios[label] = medians[top] / medians[bottom]
        met[label] = ratios[label] >= least
    return ratios, met


def main() -> None:
    """Run the contenders interleaved at each number of envs, print the table, ratios and RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=PPOSettings.frames)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--envs", type=int, nargs="+", default=[PPOSettings.num_envs],
                        help="numbers of environments stepped together, each measured in turn")
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    sizes = {}
    for envs in arguments.envs:
        if PPOSettings.frames_per_batch % envs:
            parser.error(f"--envs {envs}: a batch of {PPOSettings.frames_per_batch} frames must split evenly over the envs")
        settings = replace(PPOSettings(frames=arguments.frames), num_envs=envs)
        print(f"\nsettings: {json.dumps(settings.as_dict())}")
        print(f"{'contender':18s} {'repeat':>6s} {'fps':>8s} {'peak RSS MiB':>12s} {'final return':>12s} "
              f"{'parameters':>10s}", flush=True)
        runs: dict[str, list[dict]] = {name: [] for name in arguments.contenders}
        for repeat in range(arguments.repeats):
            for name in arguments.contenders:
                run = run_in_child(__file__, {"contender": name, "repeat": repeat, "settings": settings.as_dict()})
                runs[name].append(run)
                if "error" in run:
                    print(f"{name:18s} {repeat:>6d} FAILED: {run['error'].strip().splitlines()[-1]}", flush=True)
                    continue
                print(f"{name:18s} {repeat:>6d} {run['fps']:>8.0f} {run['peak_rss_mib']:>12.0f} "
                      f"{run['final_return']:>12.1f} {run['parameters']:>10,}", flush=True)
        done = {name: [run for run in group if "error" not in run] for name, group in runs.items()}
        medians = {name: statistics.median(run["fps"] for run in group) for name, group in done.items() if group}
        memory = {name: statistics.median(run["peak_rss_mib"] for run in group) for name, group in done.items() if group}
        print(f"median frames per second, {envs} envs: " + ", ".join(f"{name} {fps:.0f}" for name, fps in medians.items()))
        print(f"median peak RSS MiB, {envs} envs: " + ", ".join(f"{name} {mib:.0f}" for name, mib in memory.items()))
        shares = time_shares(done)
        for name, phases in shares.items():
            print(f"median time shares of {name}, {envs} envs: " + ", ".join(f"{phase} {share:.0%}" for phase, share in phases.items()))
        ratios, met = ratios_and_goals(medians, envs)
        for label, ratio in ratios.items():
            least = next(value for (goal, only), value in GOALS.items() if goal == label and only in (None, envs))
            print(f"{label:32s} {ratio:5.2f}  (goal >= {least}: {'met' if met[label] else 'NOT met'})")
        sizes[str(envs)] = {"settings": settings.as_dict(), "median_fps": medians, "median_peak_rss_mib": memory,
                            "ratios": ratios, "goals_met": met, "time_shares": shares}
    print("RESULT " + json.dumps({"benchmark": "ppo_speed", "envs": sizes}))


if __name__ == "__main__":
    main()
