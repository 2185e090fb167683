"""The ``himo`` command line: list, validate, show, reference, inspect, rollout, train, eval, resume, ablate, tune."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from himo.scenarios.catalog import builtin_scenarios
from himo.scenarios.checkpoint import CheckpointError
from himo.scenarios.errors import RunError, ScenarioError
from himo.scenarios.interrupt import EXIT_CODE, RunInterrupted
from himo.scenarios.loader import load, parse_yaml, read_yaml, to_yaml
from himo.scenarios.schema import Scenario

SET_HELP = "override a field, e.g. --set train.frames=10000 (repeatable; the value is YAML)"
SCENARIO_HELP = "a scenario file, or a built-in scenario's name (see himo list)"
RUN_HELP = "a run folder, e.g. runs/beacon-20261129-120000"

DESCRIPTIONS = {
    "validate": "Prints `ok: ...` per file, or every error with file, line and field. `--env` also builds each "
    "scenario's env and policy, so a modality key the env lacks, a wrong shape or an unknown action part is found "
    "before a run.",
    "show": "Every field, defaults included, as YAML. `himo show --help` also lists every scenario field with its "
    "default and description.",
    "inspect": "Builds an env as a scenario would and shows each agent group: its agents, every observation key with "
    "its per-agent shape and dtype, its action space and its reward components; then a random policy's mean team "
    "return (and success rate) over `--episodes` episodes. Write a scenario's `modalities` from it; the random "
    "return is a baseline.",
    "rollout": "Builds the scenario's environment with its reward channels, steps it with random actions and prints a "
    "summary.",
    "train": "Shows a progress bar (frames, frames/s, recent return) and writes `runs/<scenario>-<time>/` (scenario, "
    "TensorBoard events, checkpoints). Ctrl-C stops with a checkpoint and exit code 130.",
    "eval": "Runs the policy of a run's newest readable checkpoint, one episode in each of `--episodes` fresh envs (so "
    "short episodes are not favoured); prints team return, success rate, each channel's return and how often the "
    "manager chose each worker (its mean weight in weighted mode). `--sample` samples actions and choices as in "
    "training: a memoryless greedy policy can loop where a sampling one moves on.",
    "resume": "Continues up to the run's `train.frames`, exactly where it stopped on the built-in envs (Gymnasium and "
    "PettingZoo envs resume with fresh episodes).",
    "ablate": "For each seed trains the scenario as it is (`hierarchical`), its flat variant (`flat`: one worker "
    "reading every modality) and each modality removed in turn (`no_<modality>`); evaluates each greedy policy on "
    "fresh episodes; writes `ablation.md`, `ablation.json`, `ablation.png` and `runs/` into `--out`. Runs `--out` "
    "already holds with the same settings are read, not trained again; `--finished-only` writes the table from "
    "them alone.",
    "tune": "Searches the scenario's `tune:` space with Optuna, one run folder per trial; prints each trial and a "
    "table and writes `best.yaml`, `trials.md` and `importance.png`.",
}
"""The longer description of each subcommand, shown by ``himo <command> --help`` and in the CLI reference."""


def _list(arguments: argparse.Namespace) -> int:
    for name, path in builtin_scenarios().items():
        data, _ = read_yaml(path)
        print(f"{name:<24} {data.get('description', '')}")
    return 0


def _validate(arguments: argparse.Namespace) -> int:
    failures = 0
    for reference in arguments.scenarios:
        try:
            scenario = load(reference, arguments.set)
            if arguments.env:
                _build(scenario)
        except ScenarioError as error:
            print(error, file=sys.stderr)
            failures += 1
        else:
            built = "; its env and policy build" if arguments.env else ""
            print(f"ok: {reference} (scenario {scenario.name!r}{built})")
    return 1 if failures else 0


def _build(scenario: Scenario) -> None:
    """Build the scenario's env (two copies) and policy, as a run would: every key, shape and part checked."""
    from himo.scenarios.build import build_env, build_policy

    env = build_env(scenario, num_envs=2)
    try:
        build_policy(scenario, env)
    finally:
        env.close()


def _show(arguments: argparse.Namespace) -> int:
    print(to_yaml(load(arguments.scenario, arguments.set)), end="")
    return 0


def _reference(arguments: argparse.Namespace) -> int:
    from himo.scenarios.cli_reference import markdown_cli_reference
    from himo.scenarios.reference import markdown_reference

    print(markdown_cli_reference() if arguments.cli else markdown_reference(), end="")
    return 0


def _rollout(arguments: argparse.Namespace) -> int:
    from himo.scenarios.rollout import random_rollout

    scenario = load(arguments.scenario, arguments.set)
    print(random_rollout(scenario, steps=arguments.steps).summary())
    return 0


def _inspect(arguments: argparse.Namespace) -> int:
    from himo.scenarios.inspect_env import inspect_env

    try:
        kwargs = parse_yaml(arguments.kwargs) if arguments.kwargs else {}
    except yaml.YAMLError as error:
        raise ScenarioError.single("--kwargs", f"not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(kwargs, dict):
        raise ScenarioError.single("--kwargs", f"expected a mapping such as '{{max_steps: 16}}', got {arguments.kwargs!r}")
    view = inspect_env(arguments.env_id, kwargs, arguments.episodes, arguments.python_path, arguments.success_above)
    print(view.summary())
    return 0


def _train(arguments: argparse.Namespace) -> int:
    from himo.scenarios.run import train

    scenario = load(arguments.scenario, arguments.set)
    print(train(scenario, progress=not arguments.quiet).summary())
    return 0


def _resume(arguments: argparse.Namespace) -> int:
    from himo.scenarios.run import resume

    print(resume(Path(arguments.run), progress=not arguments.quiet).summary())
    return 0


def _eval(arguments: argparse.Namespace) -> int:
    from himo.scenarios.evaluate import evaluate

    print(evaluate(Path(arguments.run), arguments.episodes, arguments.sample).summary())
    return 0


def _ablate(arguments: argparse.Namespace) -> int:
    import time

    from himo.scenarios.ablation import ablate, markdown_table

    name = Path(arguments.scenario).stem
    output = arguments.out or Path("runs") / f"ablation-{name}-{time.strftime('%Y%m%d-%H%M%S')}"

    def report(result: dict) -> None:
        success = "" if result["success_rate"] is None else f", success {result['success_rate']:.1%}"
        earlier = " (finished earlier: read from its saved result)" if result.get("reused") else ""
        print(f"{result['variant']} seed {result['seed']}: greedy return {result['greedy_return']:+.3f}{success}{earlier}",
              flush=True)

    summary = ablate(
        arguments.scenario,
        frames=arguments.frames,
        seeds=arguments.seeds,
        episodes=arguments.episodes,
        overrides=arguments.set,
        jobs=arguments.jobs,
        flat_reward=_flat_reward(arguments.flat_reward),
        variants=arguments.variants,
        output=output,
        report=report,
        finished_only=arguments.finished_only,
    )
    print(f"\n{markdown_table(summary)}\nwritten: {output}/ablation.json, ablation.md, ablation.png")
    return 0


def _tune(arguments: argparse.Namespace) -> int:
    try:
        from himo.scenarios.tune import tune
    except ModuleNotFoundError as error:
        raise RunError(f"himo tune needs the 'tune' extra ({error.name} is missing): pip install -e '.[tune]'") from None

    output = arguments.out or Path("runs") / f"tune-{Path(arguments.scenario).stem}"
    summary = tune(
        arguments.scenario,
        trials=arguments.trials,
        output=output,
        overrides=arguments.set,
        storage=arguments.storage,
        study_name=arguments.study_name,
        jobs=arguments.jobs,
        backend=arguments.backend,
    )
    print(f"\n{summary.table()}")
    if summary.best is None:
        print("no trial has finished yet: no best.yaml")
    else:
        print(f"best: trial {summary.best.number}, {summary.best.value:+.4f}")
    if summary.importances is None:
        print("parameter importance: needs at least two finished trials with different values")
    print(f"study {summary.study_name!r} in {summary.storage}\nwritten: {', '.join(map(str, summary.written))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``himo`` command."""
    from himo.scenarios.reference import text_reference

    parser = argparse.ArgumentParser(
        prog="himo", description="Hierarchical, multi-agent, multimodal reinforcement learning."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list the built-in scenarios, the default first")
    listing.set_defaults(handler=_list)

    validate = commands.add_parser(
        "validate", help="check scenario files (paths or built-in names)", description=DESCRIPTIONS["validate"]
    )
    validate.add_argument("scenarios", nargs="+", metavar="SCENARIO", help=SCENARIO_HELP)
    validate.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    validate.add_argument(
        "--env", action="store_true", help="also build each scenario's env and policy: its observation keys, shapes and actions"
    )
    validate.set_defaults(handler=_validate)

    show = commands.add_parser(
        "show", description=DESCRIPTIONS["show"],
        help="print the fully resolved scenario",
        epilog=text_reference(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("scenario", metavar="SCENARIO", help=SCENARIO_HELP)
    show.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    show.set_defaults(handler=_show)

    reference = commands.add_parser(
        "reference", help="print the scenario-file reference (Markdown), or with --cli the command-line reference"
    )
    reference.add_argument("--cli", action="store_true", help="print the command-line reference instead")
    reference.set_defaults(handler=_reference)

    rollout = commands.add_parser(
        "rollout", help="build the scenario's environment and step it with random actions", description=DESCRIPTIONS["rollout"]
    )
    rollout.add_argument("scenario", metavar="SCENARIO", help=SCENARIO_HELP)
    rollout.add_argument("--steps", type=int, default=100, help="batched steps to take (default 100)")
    rollout.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    rollout.set_defaults(handler=_rollout)

    inspection = commands.add_parser(
        "inspect", description=DESCRIPTIONS["inspect"], help="show an env's groups, observations, actions and reward components, and a random policy's return"
    )
    inspection.add_argument("env_id", metavar="ENV_ID", help="as a scenario's env.id, e.g. gymnasium/CartPole-v1")
    inspection.add_argument("--kwargs", metavar="YAML", help="the env's kwargs as a YAML mapping, e.g. '{max_steps: 16}'")
    inspection.add_argument("--episodes", type=_positive, default=20, help="random episodes to play (default 20)")
    inspection.add_argument(
        "--python-path", action="append", default=[], metavar="DIR", help="a folder to import the env's module from"
    )
    inspection.add_argument("--success-above", type=float, metavar="X", help="an episode succeeds above this team return")
    inspection.set_defaults(handler=_inspect)

    train = commands.add_parser(
        "train", help="train a scenario; writes runs/<scenario>-<time>/", description=DESCRIPTIONS["train"]
    )
    train.add_argument("scenario", metavar="SCENARIO", help=SCENARIO_HELP)
    train.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "eval", help="evaluate the greedy (or --sample: sampling) policy of a run's newest readable checkpoint", description=DESCRIPTIONS["eval"]
    )
    evaluate.add_argument("run", metavar="RUN", help=RUN_HELP)
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    evaluate.add_argument(
        "--sample", action="store_true", help="sample actions and the manager's choices, as in training (default: greedy)"
    )
    evaluate.set_defaults(handler=_eval)

    resume = commands.add_parser(
        "resume", help="continue a run from its newest readable checkpoint", description=DESCRIPTIONS["resume"]
    )
    resume.add_argument("run", metavar="RUN", help=RUN_HELP)
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    resume.set_defaults(handler=_resume)

    ablation = commands.add_parser(
        "ablate", description=DESCRIPTIONS["ablate"], help="train the scenario, its flat variant and each modality removed; evaluate and compare them"
    )
    ablation.add_argument("scenario", metavar="SCENARIO", help=SCENARIO_HELP)
    ablation.add_argument("--frames", type=_positive, default=300_000, help="frames per run (default 300000)")
    ablation.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    ablation.add_argument("--episodes", type=_positive, default=200, help="greedy evaluation episodes per run (default 200)")
    ablation.add_argument("--jobs", type=_positive, default=1, help="runs at once, each in its own process (default 1)")
    ablation.add_argument(
        "--out", type=Path, default=None,
        help="output folder (default runs/ablation-<scenario>-<time>); runs it already holds with the same settings "
        "are read, not trained again",
    )
    ablation.add_argument(
        "--variants", nargs="+", default=None, metavar="VARIANT",
        help="train only these variants (hierarchical, flat, no_<modality>; default every one)",
    )
    ablation.add_argument(
        "--flat-reward", default=None, metavar="MIX",
        help="the flat worker's reward mix as YAML, e.g. '{env: 0.5, approach_sound: 1.0}' (default: every component "
        "the workers use, at its largest weight)",
    )
    ablation.add_argument(
        "--finished-only", action="store_true",
        help="train nothing: write the table from the runs --out already holds, the others shown as not finished",
    )
    ablation.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    ablation.set_defaults(handler=_ablate)

    tuning = commands.add_parser(
        "tune", help="search the scenario's tune: space with Optuna; writes best.yaml", description=DESCRIPTIONS["tune"]
    )
    tuning.add_argument("scenario", metavar="SCENARIO", help=SCENARIO_HELP)
    tuning.add_argument("--trials", type=_positive, required=True, help="trials to add to the study")
    tuning.add_argument(
        "--out", type=Path, default=None,
        help="output folder: one run folder per trial, best.yaml, trials.md, importance.png "
        "(default runs/tune-<scenario>; the same folder resumes its study)",
    )
    tuning.add_argument(
        "--storage", default=None, metavar="URL",
        help="the study's storage, e.g. sqlite:///study.db (default: study.db in the output folder)",
    )
    tuning.add_argument("--study-name", default=None, metavar="NAME", help="the study's name (default: the scenario's)")
    tuning.add_argument("--jobs", type=_positive, default=1, help="trials at once (default 1)")
    tuning.add_argument(
        "--backend", choices=["local", "ray"], default="local",
        help="local: each job a process on this machine; ray: each job a Ray task (on train.ray_address's runtime)",
    )
    tuning.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help=SET_HELP)
    tuning.set_defaults(handler=_tune)
    return parser


def _flat_reward(text: str | None) -> dict[str, float] | None:
    """``--flat-reward``'s mix, checked: a mapping of component names to finite numbers."""
    if text is None:
        return None
    import math

    import yaml

    try:
        mix = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError.single("--flat-reward", f"not YAML: {error}") from None
    if not isinstance(mix, dict) or not mix or not all(
        isinstance(weight, (int, float)) and math.isfinite(weight) for weight in mix.values()
    ):
        raise ScenarioError.single("--flat-reward", f"expected a mapping of reward components to numbers, got {text!r}")
    return {str(name): float(weight) for name, weight in mix.items()}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``himo`` command; returns the exit code (130 after Ctrl-C)."""
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except (ScenarioError, CheckpointError, RunError) as error:
        print(error, file=sys.stderr)
        return 2
    except RunInterrupted as interruption:  # Ctrl-C during train or resume: says what was saved
        print(f"\n{interruption}", file=sys.stderr)
        return EXIT_CODE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_CODE
    except Exception as error:
        ray = sys.modules.get("ray")  # imported only by runs and studies on Ray
        if ray is not None and isinstance(error, ray.exceptions.RayError):
            print(f"a Ray actor or task failed: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
