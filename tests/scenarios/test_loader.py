"""Loading scenarios: every built-in validates, malformed files get precise errors, extends and --set resolve."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from himo.scenarios.catalog import DEFAULT_SCENARIO, builtin_scenarios
from himo.scenarios.errors import ScenarioError
from himo.scenarios.loader import load, to_yaml

VALID = """\
name: tiny
env:
  id: himo/beacon
  num_envs: 4
modalities:
  image:
    key: view
    encoder: cnn
  vector:
    key: direction
    encoder: mlp
workers:
  image:
    reward: {explore: 1.0, env: 0.5}
  vector: {}
manager:
  mode: select
  termination:
    kind: interval
    every: 4
train:
  frames: 1000
  gamma: 0.99
"""


def write(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` as UTF-8; a lone surrogate such as ``"\udce9"`` writes the raw byte 0xe9 (not UTF-8)."""
    path = folder / name
    path.write_bytes(textwrap.dedent(text).encode("utf-8", "surrogateescape"))
    return path


def replace_line(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("name", list(builtin_scenarios()))
def test_every_builtin_scenario_validates(name: str) -> None:
    scenario = load(name)
    assert scenario.name == name
    assert scenario.description, "a built-in scenario describes itself for `himo list`"


def test_default_scenario_is_builtin_and_listed_first() -> None:
    assert next(iter(builtin_scenarios())) == DEFAULT_SCENARIO


def test_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    scenario = load(write(tmp_path, "tiny.yaml", VALID))
    assert scenario.env.num_envs == 4
    assert scenario.modalities["image"].encoder == "cnn"
    assert scenario.workers["image"].reward == {"explore": 1.0, "env": 0.5}
    assert scenario.workers["vector"].reward == {"env": 1.0}
    assert scenario.algorithm.manager.name == "ppo"
    assert scenario.worker_modalities("image") == ("image",)


def test_workers_default_to_one_per_modality(tmp_path: Path) -> None:
    text = VALID.split("workers:")[0] + "train: {frames: 10}\n"
    scenario = load(write(tmp_path, "tiny.yaml", text))
    assert list(scenario.workers) == ["image", "vector"]


def test_loaded_scenario_is_frozen(tmp_path: Path) -> None:
    scenario = load(write(tmp_path, "tiny.yaml", VALID))
    with pytest.raises(Exception):
        scenario.train.frames = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        scenario.modalities["audio"] = scenario.modalities["image"]  # type: ignore[index]
    with pytest.raises(TypeError):
        scenario.workers["image"].reward["env"] = 2.0  # type: ignore[index]


# (description, how to break VALID, expected pieces of the message: dotted path, line, hint)
MALFORMED = [
    ("unknown top-level key", ("train:", "trian:"), ["trian", ":21:", "did you mean 'train'"]),
    ("unknown nested key", ("  frames: 1000", "  frame: 1000"), ["train.frame", ":22:", "did you mean 'frames'"]),
    ("wrong type", ("  frames: 1000", "  frames: many"), ["train.frames", ":22:", "integer"]),
    ("out of range", ("  gamma: 0.99", "  gamma: 1.5"), ["train.gamma", ":23:", "less than or equal to 1"]),
    ("zero envs", ("  num_envs: 4", "  num_envs: 0"), ["env.num_envs", ":4:", "greater than or equal to 1"]),
    ("unknown encoder", ("    encoder: cnn", "    encoder: cnnn"), ["modalities.image.encoder", ":8:", "did you mean 'cnn'"]),
    ("missing encoder", ("    encoder: cnn\n", ""), ["modalities.image", ":6:", "missing 'encoder' field"]),
    (
        "unknown encoder option",
        ("    encoder: cnn\n", "    encoder: cnn\n    embeding_dim: 8\n"),
        ["modalities.image.embeding_dim", ":9:", "did you mean 'embedding_dim'"],
    ),
    ("bad env family", ("  id: himo/beacon", "  id: gym/CartPole-v1"), ["env.id", ":3:", "unknown env family 'gym'"]),
    ("malformed env id", ("  id: himo/beacon", "  id: beacon"), ["env.id", ":3:", "family/name"]),
    ("manager mode typo", ("  mode: select", "  mode: selct"), ["manager.mode", ":17:", "did you mean 'select'"]),
    ("termination typo", ("    kind: interval", "    kind: intervall"), ["manager.termination.kind", ":19:", "interval"]),
    ("zero interval", ("    every: 4", "    every: 0"), ["manager.termination.every", ":20:", "greater than or equal"]),
    ("termination field typo", ("    every: 4", "    evry: 4"), ["manager.termination.evry", ":20:", "did you mean 'every'"]),
    (
        "interval length with learned termination",
        ("    kind: interval", "    kind: learned"),
        ["manager.termination.every", ":20:", "option length of kind 'interval'", "{kind: learned}"],
    ),
    (
        "negative switching cost",
        ("    kind: interval\n    every: 4", "    kind: learned\n    switching_cost: -1"),
        ["manager.termination.switching_cost", ":20:", "greater than or equal to 0"],
    ),
    (
        "learned termination in weighted mode",
        ("  mode: select\n  termination:\n    kind: interval\n    every: 4", "  mode: weighted\n  termination:\n    kind: learned"),
        ["manager.termination.kind", ":19:", "needs mode 'select'"],
    ),
    ("worker without modality", ("  vector: {}", "  sound: {}"), ["workers.sound", ":15:", "no modality named 'sound'"]),
    (
        "worker reads unknown modality",
        ("  vector: {}", "  vector: {modalities: [vector, smell]}"),
        ["workers.vector.modalities", ":15:", "no modality named 'smell'"],
    ),
    ("hidden size zero", ("  vector: {}", "  vector: {hidden: [64, 0]}"), ["workers.vector.hidden.1", ":15:", "greater"]),
    ("reward weight not a number", ("env: 0.5}", "env: lots}"), ["workers.image.reward.env", ":14:", "number"]),
    ("bad scenario name", ("name: tiny", "name: my run"), ["name", ":1:", "pattern"]),
    (
        "unknown algorithm",
        ("train:", "algorithm: {manager: ppoo}\ntrain:"),
        ["algorithm.manager", ":21:", "did you mean 'ppo'"],
    ),
    ("missing env", ("env:\n  id: himo/beacon\n  num_envs: 4\n", ""), ["env", "required field is missing"]),
    ("YAML syntax error", ("    key: view", "    key: [view"), ["YAML syntax error", ":8:"]),
    ("duplicate key", ("    key: view", "    key: view\n    key: view2"), ["duplicate key 'key'", ":8:"]),
    ("fusion typo", ("  mode: select", "  mode: select\n  fusion: atention"), ["manager.fusion", ":18:", "attention"]),
    # A Latin-1 file: the byte 0xe9 (é) is not UTF-8.
    ("not UTF-8", ("    key: view", "    key: vi\udce9w"), ["not a text file (UTF-8)", ":7:", "0xe9"]),
    (
        "missing extends target",
        ("name: tiny", "extends: gone.yaml\nname: tiny"),
        [":1: extends: scenario file not found: 'gone.yaml'", "(looked for ", "gone.yaml)"],
    ),
    (
        "extends an unknown built-in",
        ("name: tiny", "extends: beacn\nname: tiny"),
        [":1: extends: no scenario file or built-in scenario named 'beacn'", "did you mean 'beacon'"],
    ),
    (
        "reward parameter too large",
        ("workers:", "rewards:\n  boom: {function: alive, value: 1.0e308}\nworkers:"),
        ["rewards.boom.value", ":13:", "less than or equal to 1000000"],
    ),
    (
        "reward parameter not a number",
        ("workers:", "rewards:\n  boom: {function: alive, value: .nan}\nworkers:"),
        ["rewards.boom.value", ":13:", "finite number"],
    ),
    (
        "reward parameter of the wrong type",
        ("workers:", "rewards:\n  boom: {function: step_cost, value: lots}\nworkers:"),
        ["rewards.boom.value", ":13:", "valid number"],
    ),
    (
        "reward parameter below its range",
        ("workers:", "rewards:\n  boom: {function: step_cost, value: -1}\nworkers:"),
        ["rewards.boom.value", ":13:", "greater than or equal to 0"],
    ),
    (
        "reward table too large",
        ("workers:", "rewards:\n  boom: {function: novelty, observation: view, table_size: 1e9}\nworkers:"),
        ["rewards.boom.table_size", ":13:", "less than or equal to 67108864"],
    ),
    (
        "unknown reward function",
        ("workers:", "rewards:\n  boom: {function: alvie}\nworkers:"),
        ["rewards.boom.function", ":13:", "did you mean 'alive'"],
    ),
    (
        "unknown reward parameter",
        ("workers:", "rewards:\n  boom: {function: alive, valeu: 1}\nworkers:"),
        ["rewards.boom.valeu", ":13:", "unknown field 'valeu' for alive", "did you mean 'value'"],
    ),
    (
        "missing reward parameter",
        ("workers:", "rewards:\n  boom: {function: novelty}\nworkers:"),
        ["rewards.boom.observation", ":13:", "required field is missing"],
    ),
    ("reward weight not finite", ("env: 0.5}", "env: .nan}"), ["workers.image.reward.env", ":14:", "finite number"]),
    (
        "reward weight too large",
        ("env: 0.5}", "env: 1.0e308}"),
        ["workers.image.reward.env", ":14:", "less than or equal to 1000000"],
    ),
    (
        "infinite success threshold",
        ("  num_envs: 4", "  num_envs: 4\n  success_above: .inf"),
        ["env.success_above", ":5:", "finite number"],
    ),
    (
        "infinite switching cost",
        ("    kind: interval\n    every: 4", "    kind: learned\n    switching_cost: .inf"),
        ["manager.termination.switching_cost", ":20:", "finite number"],
    ),
    ("discount not a number", ("  gamma: 0.99", "  gamma: .nan"), ["train.gamma", ":23:", "finite number"]),
    ("seed too large", ("  frames: 1000", "  frames: 1000\n  seed: 1e12"), ["train.seed", ":23:", "4294967295"]),
]


@pytest.mark.parametrize(("description", "change", "expected"), MALFORMED, ids=[row[0] for row in MALFORMED])
def test_malformed_scenario_names_the_offending_field(
    tmp_path: Path, description: str, change: tuple[str, str], expected: list[str]
) -> None:
    path = write(tmp_path, "broken.yaml", replace_line(VALID, *change))
    with pytest.raises(ScenarioError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message
    for piece in expected:
        assert piece in message, f"{description}: {piece!r} not in {message!r}"


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="must be a mapping"):
        load(write(tmp_path, "list.yaml", "- a\n- b\n"))


def test_missing_file_and_unknown_builtin_name() -> None:
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load("no/such/file.yaml")
    with pytest.raises(ScenarioError, match=f"did you mean '{DEFAULT_SCENARIO}'"):
        load(DEFAULT_SCENARIO[:-1] + "x")


def test_extends_merges_mappings_and_replaces_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", VALID)
    child = write(
        tmp_path,
        "child.yaml",
        """\
        extends: base.yaml
        name: child
        env: {num_envs: 2}
        manager: {termination: {every: 8}}
        workers:
          image: {hidden: [32]}
        """,
    )
    scenario = load(child)
    assert scenario.name == "child"
    assert scenario.env.num_envs == 2 and scenario.env.id == "himo/beacon"
    assert scenario.manager.termination.every == 8 and scenario.manager.termination.kind == "interval"
    assert scenario.workers["image"].hidden == (32,)
    assert scenario.workers["image"].reward == {"explore": 1.0, "env": 0.5}
    assert scenario.train.frames == 1000


def test_extends_a_builtin_by_name(tmp_path: Path) -> None:
    child = write(tmp_path, "mine.yaml", f"extends: {DEFAULT_SCENARIO}\nname: mine\ntrain: {{frames: 123}}\n")
    scenario = load(child)
    assert scenario.name == "mine" and scenario.train.frames == 123
    assert scenario.env == load(DEFAULT_SCENARIO).env


def test_error_in_extended_file_names_that_file(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", replace_line(VALID, "  gamma: 0.99", "  gamma: 2"))
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: child\n")
    with pytest.raises(ScenarioError) as caught:
        load(child)
    assert f"{base}:23: train.gamma" in str(caught.value)


def test_extends_cycle_and_missing_parent(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\nname: b\n")
    with pytest.raises(ScenarioError, match="cycle"):
        load(tmp_path / "a.yaml")
    orphan = write(tmp_path, "orphan.yaml", "name: orphan\nextends: gone.yaml\n")
    expected = rf"orphan.yaml:2: extends: scenario file not found: 'gone.yaml' \(looked for {tmp_path / 'gone.yaml'}\)"
    with pytest.raises(ScenarioError, match=expected):
        load(orphan)


def test_exponent_numbers_are_floats_even_in_free_form_fields(tmp_path: Path) -> None:
    # YAML 1.1 would read 1e-3 (no decimal point) and 2.0e3 (unsigned exponent) as text.
    path = write(tmp_path, "tiny.yaml", replace_line(VALID, "  num_envs: 4", "  num_envs: 4\n  kwargs: {noise: 1e-3}"))
    scenario = load(path, ["env.kwargs.scale=2.0e3", "train.gamma=9.9e-1"])
    assert scenario.env.kwargs == {"noise": 0.001, "scale": 2000.0}
    assert scenario.train.gamma == 0.99


def test_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    path = write(tmp_path, "tiny.yaml", VALID)
    scenario = load(
        path,
        [
            "train.frames=5000",
            "train.gamma=0.9",
            "manager.termination.every=2",
            "workers.image.hidden=[16, 16]",
            "workers.image.reward.novelty=0.25",
            "env.kwargs.size=7",
        ],
    )
    assert scenario.train.frames == 5000 and isinstance(scenario.train.frames, int)
    assert scenario.train.gamma == 0.9
    assert scenario.manager.termination.every == 2
    assert scenario.workers["image"].hidden == (16, 16)
    assert scenario.workers["image"].reward == {"explore": 1.0, "env": 0.5, "novelty": 0.25}
    assert scenario.env.kwargs == {"size": 7}
    with pytest.raises(ScenarioError, match=r"--set train.frames=-1: train.frames: Input should be greater"):
        load(path, ["train.frames=-1"])
    with pytest.raises(ScenarioError, match=r"--set train.fraems=1: train.fraems: unknown field .*'frames'"):
        load(path, ["train.fraems=1"])
    with pytest.raises(ScenarioError, match="expected dotted.path=value"):
        load(path, ["train.frames"])


def test_show_round_trips(tmp_path: Path) -> None:
    rewards = "rewards={near: {function: progress, observation: direction, indices: [0]}, tick: {function: step_cost}}"
    scenario = load(write(tmp_path, "tiny.yaml", VALID), ["train.seed=3", rewards])
    assert scenario.rewards["near"].parameters == {"observation": "direction", "indices": (0,), "scale": 1.0}
    resolved = write(tmp_path, "resolved.yaml", to_yaml(scenario))
    assert load(resolved) == scenario


def test_manager_modes_and_termination_kinds_resolve_and_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, "tiny.yaml", VALID)
    learned = load(path, ["manager.termination={kind: learned}"])
    assert learned.manager.termination.kind == "learned" and learned.manager.termination.switching_cost == 0.01
    assert not hasattr(learned.manager.termination, "every")
    weighted = load(path, ["manager.mode=weighted", "manager.termination={every: 6}"])
    assert weighted.manager.mode == "weighted"
    assert weighted.manager.termination.kind == "interval" and weighted.manager.termination.every == 6
    for scenario in (learned, weighted):
        saved = write(tmp_path, "saved.yaml", to_yaml(scenario))
        assert to_yaml(load(saved)) == to_yaml(scenario)
    with pytest.raises(ScenarioError, match=r"manager.termination.kind: unknown kind 'lerned'.*did you mean 'learned'"):
        load(path, ["manager.termination.kind=lerned"])
