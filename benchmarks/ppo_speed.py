"""Training speed of PPO on CartPole-v1: himo (hierarchical and flat), a plain TorchRL script and Stable-Baselines3.

Every contender trains the same env with the same PPO hyper-parameters and network sizes
(``peers.settings.PPOSettings``), each run in a fresh process on one torch thread, the
contenders interleaved ``--repeats`` times so all see the same machine load. Frames per second
count collection and learning (setup excluded). Prints a table, the ratios and whether the
goals were met, and ends with one line ``RESULT {json}``.

    python benchmarks/ppo_speed.py --frames 50176 --repeats 3

Contenders: ``himo-hierarchical`` (the ``cartpole`` scenario with three vector workers and a
PPO manager choosing one every 4 steps), ``himo-flat`` (the ``cartpole`` scenario: one worker),
``torchrl`` (``peers/torchrl_ppo.py``) and ``sb3`` (``peers/sb3_ppo.py``, the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from benchmarks_common import print_child_result, run_in_child
from peers.settings import PPOSettings

CONTENDERS = ("himo-hierarchical", "himo-flat", "torchrl", "sb3")
GOALS = {
    "himo-flat / torchrl": 1.0,
    "himo-hierarchical / himo-flat": 0.8,
    "himo-flat / sb3": 1.0,
    "himo-hierarchical / sb3": 1.0,
}
"""Each ratio of median frames per second and the least it should be."""


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
            "parameters": parameters}


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
    else:
        result = train_himo(settings, hierarchical=spec["contender"] == "himo-hierarchical")
    return {**spec, **result}


def main() -> None:
    """Run the contenders interleaved, print the table, ratios and RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=PPOSettings.frames)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    settings = PPOSettings(frames=arguments.frames)
    print(f"settings: {json.dumps(settings.as_dict())}")
    print(f"{'contender':18s} {'repeat':>6s} {'fps':>8s} {'final return':>12s} {'parameters':>10s}", flush=True)
    runs: dict[str, list[dict]] = {name: [] for name in arguments.contenders}
    for repeat in range(arguments.repeats):
        for name in arguments.contenders:
            run = run_in_child(__file__, {"contender": name, "repeat": repeat, "settings": settings.as_dict()})
            runs[name].append(run)
            if "error" in run:
                print(f"{name:18s} {repeat:>6d} FAILED: {run['error'].strip().splitlines()[-1]}", flush=True)
                continue
            print(f"{name:18s} {repeat:>6d} {run['fps']:>8.0f} {run['final_return']:>12.1f} {run['parameters']:>10,}",
                  flush=True)

    medians = {name: statistics.median(run["fps"] for run in group if "error" not in run)
               for name, group in runs.items() if any("error" not in run for run in group)}
    print("\nmedian frames per second: " + ", ".join(f"{name} {fps:.0f}" for name, fps in medians.items()))
    ratios = {}
    for label, least in GOALS.items():
        top, bottom = label.split(" / ")
        if top in medians and bottom in medians:
            ratios[label] = medians[top] / medians[bottom]
            verdict = "met" if ratios[label] >= least else "NOT met"
            print(f"{label:32s} {ratios[label]:5.2f}  (goal >= {least}: {verdict})")
    print("RESULT " + json.dumps({"benchmark": "ppo_speed", "settings": settings.as_dict(), "median_fps": medians,
                                  "ratios": ratios, "goals_met": {label: ratios[label] >= GOALS[label]
                                                                  for label in ratios}}))


if __name__ == "__main__":
    main()
