"""How himo's training speed and memory grow with environments, agents, modalities and a large text encoder.

Each configuration trains for ``--frames`` frames (``himo.scenarios.run.train``) in a fresh process
on one torch thread and reports env frames per second (collection and learning), agent steps
per second and the process's peak resident memory (RSS). Prints a table and ends with one line
``RESULT {json}``.

    python benchmarks/scaling.py --frames 8192

Axes (each from a built-in scenario, everything else as it is):
- ``envs``: ``beacon`` (its own world, batched in torch) and ``cartpole`` (Gymnasium's vector env)
  with 1, 4, 16 and 64 environments;
- ``agents``: ``beacon`` with 1, 2, 4 and 8 agents per environment;
- ``modalities``: ``beacon`` with its first one (image), two (image, text) and three modalities and their workers;
- ``text-cache``: ``babyai-gotolocal`` whose text worker reads a frozen MiniLM-L6-sized BERT
  (6 layers, width 384, 22.7M parameters, built from a config with random weights and saved to a
  local folder: its cost is the pretrained model's), with the embedding cache on and off. Without
  the cache each forward still encodes each distinct mission of its batch once.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from benchmarks_common import print_child_result, run_in_child

FRAMES_PER_BATCH = 1024


def first_modalities(count: int) -> list[str]:
    """Overrides keeping ``beacon``'s first ``count`` modalities and the workers that read only those."""
    from himo.scenarios.loader import load

    base = load("beacon")
    kept = list(base.modalities)[:count]
    modalities = {name: base.modalities[name].model_dump(mode="json") for name in kept}
    workers = {name: worker.model_dump(mode="json", exclude_none=True) for name, worker in base.workers.items()
               if set(base.worker_modalities(name)) <= set(kept)}
    return [f"modalities={json.dumps(modalities)}", f"workers={json.dumps(workers)}"]


def configurations(text_model: str) -> list[dict]:
    """Every (axis, value, scenario, overrides) measured."""
    runs = [{"axis": "envs", "value": envs, "scenario": scenario, "overrides": [f"env.num_envs={envs}"]}
            for scenario in ("beacon", "cartpole") for envs in (1, 4, 16, 64)]
    runs += [{"axis": "agents", "value": agents, "scenario": "beacon", "overrides": [f"env.kwargs.agents={agents}"]}
             for agents in (1, 2, 4, 8)]
    runs += [{"axis": "modalities", "value": count, "scenario": "beacon", "overrides": first_modalities(count)}
             for count in (1, 2, 3)]
    for cache in (True, False):
        text = f"{{key: mission, encoder: transformer, pretrained: {text_model}, frozen: true, cache: {str(cache).lower()}}}"
        runs.append({"axis": "text-cache", "value": "on" if cache else "off", "scenario": "babyai-gotolocal",
                     "overrides": [f"modalities.text={text}"]})
    return runs


def save_minilm_sized_model(folder: Path) -> Path:
    """A BERT of all-MiniLM-L6-v2's shape over MiniGrid's words, with its tokenizer, saved in ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from himo.envs.vocabularies import MINIGRID_WORDS

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *MINIGRID_WORDS]
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(words)})
    config = BertConfig(vocab_size=len(words), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_one(spec: dict) -> dict:
    """Train one configuration in this process (the child side of ``run_in_child``)."""
    import torch

    torch.set_num_threads(1)
    from himo.scenarios.loader import load
    from himo.scenarios.run import train

    with tempfile.TemporaryDirectory() as folder:
        overrides = [*spec["overrides"], f"train.frames={spec['frames']}", f"train.frames_per_batch={FRAMES_PER_BATCH}",
                     "train.threads=1", f"log.dir={folder}"]
        scenario = load(spec["scenario"], overrides)
        start = time.perf_counter()
        run = train(scenario, progress=False)
        wall = time.perf_counter() - start
    agents = scenario.env.kwargs.get("agents", 1)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {**spec, "fps": run.fps, "agent_steps_per_s": run.fps * agents, "wall_s": wall,
            "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    """Measure every configuration, print the table and the RESULT line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8192)
    parser.add_argument("--axes", nargs="+", default=["envs", "agents", "modalities", "text-cache"])
    parser.add_argument("--text-model", default=None,
                        help="the frozen text encoder's folder or package:<module> (default: a MiniLM-L6-sized BERT)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print_child_result(run_one(json.loads(arguments.child)))
        return

    with tempfile.TemporaryDirectory() as folder:
        text_model = arguments.text_model or str(save_minilm_sized_model(Path(folder)))
        print(f"{'scenario':17s} {'axis':11s} {'value':>5s} {'fps':>8s} {'agent steps/s':>14s} {'peak RSS MiB':>13s}",
              flush=True)
        results = []
        for spec in configurations(text_model):
            if spec["axis"] not in arguments.axes:
                continue
            run = run_in_child(__file__, {**spec, "frames": arguments.frames})
            results.append(run)
            if "error" in run:
                print(f"{spec['scenario']:17s} {spec['axis']:11s} {spec['value']!s:>5s} FAILED: "
                      f"{run['error'].strip().splitlines()[-1]}")
                continue
            print(f"{run['scenario']:17s} {run['axis']:11s} {run['value']!s:>5s} {run['fps']:>8.0f}"
                  f" {run['agent_steps_per_s']:>14.0f}"
                  f" {run['peak_rss_mib']:>13.0f}", flush=True)
    summary = [{key: run.get(key) for key in ("scenario", "axis", "value", "fps", "agent_steps_per_s", "peak_rss_mib",
                                              "error")}
               for run in results]
    print("RESULT " + json.dumps({"benchmark": "scaling", "frames": arguments.frames, "runs": summary}))


if __name__ == "__main__":
    main()
