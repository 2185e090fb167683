"""Load a scenario: YAML with line numbers, ``extends`` inheritance and ``--set`` overrides.

The result is a validated, frozen :class:`himo.scenarios.schema.Scenario`. Every error is raised as a
:class:`himo.scenarios.errors.ScenarioError` that names the file, the line and the dotted field path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from himo.scenarios.catalog import resolve_scenario
from himo.scenarios.errors import FieldPath, Origin, ScenarioError, from_validation
from himo.scenarios.schema import Scenario

EXTENDS = "extends"

Origins = dict[FieldPath, Origin]


class ScenarioYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads exponent numbers such as ``1e-3`` and ``1.0e308`` as floats.

    PyYAML follows YAML 1.1, where a float needs a decimal point and a signed exponent, so it reads
    ``1e-3`` as the text ``"1e-3"``. Typed fields would convert it, but free-form ones (``env.kwargs``)
    would hand the text to the environment, which fails later and far from the file.
    """


# Added to this subclass only (PyYAML copies the resolver table on first change): the safe loader stays as it is.
ScenarioYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """``text`` parsed as YAML by :class:`ScenarioYamlLoader`."""
    return yaml.load(text, Loader=ScenarioYamlLoader)  # noqa: S506 - a safe loader


def _collect_origins(node: yaml.Node, path: FieldPath, source: str, origins: Origins) -> None:
    """Record the line of every key and item under ``node``; reject duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ScenarioError.single(source, f"duplicate key {key!r}", key_node.start_mark.line + 1, path)
            seen.add(key)
            origins[path + (key,)] = Origin(source, key_node.start_mark.line + 1)
            _collect_origins(value_node, path + (key,), source, origins)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            origins[path + (index,)] = Origin(source, item.start_mark.line + 1)
            _collect_origins(item, path + (index,), source, origins)


def _decode(raw: bytes, source: str) -> str:
    """The text of a scenario file, which must be UTF-8 (a leading byte-order mark is dropped)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        byte = raw[error.start : error.start + 1].hex()
        message = f"not a text file (UTF-8): byte 0x{byte} cannot be decoded; save the file as UTF-8"
        raise ScenarioError.single(source, message, line) from None


def read_yaml(path: Path) -> tuple[dict[str, Any], Origins]:
    """Parse one YAML file into a mapping and the origin (file, line) of each field path."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError.single(source, f"scenario file not found (looked for {path.absolute()})") from None
    except OSError as error:
        raise ScenarioError.single(source, f"cannot read the file: {error.strerror}") from None
    text = _decode(raw, source)
    try:
        node = yaml.compose(text, Loader=ScenarioYamlLoader)
        data = parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise ScenarioError.single(source, f"YAML syntax error: {problem}", line) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError.single(source, f"a scenario must be a mapping of sections, got {type(data).__name__}", 1)
    origins: Origins = {(): Origin(source, 1)}
    if node is not None:
        _collect_origins(node, (), source, origins)
    return data, origins


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base``: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _load_tree(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], Origins]:
    """Load ``path`` and, recursively, the scenario it extends."""
    if path in chain:
        cycle = " -> ".join(str(item) for item in chain + (path,))
        raise ScenarioError.single(str(chain[-1]), f"'extends' forms a cycle: {cycle}")
    data, origins = read_yaml(path)
    _resolve_python_path(data, path.parent)
    parent = data.pop(EXTENDS, None)
    extends_origin = origins.pop((EXTENDS,), None)
    if parent is None:
        return data, origins
    if not isinstance(parent, str):
        line = extends_origin.line if extends_origin else None
        raise ScenarioError.single(str(path), "'extends' must be a file path or a built-in name", line, (EXTENDS,))
    try:
        parent_path = resolve_scenario(parent, relative_to=path.parent)
    except ScenarioError as error:
        # Reported at the 'extends' line of the file that names the parent; the message says where it was looked for.
        line = extends_origin.line if extends_origin else None
        raise ScenarioError.single(str(path), error.problems[0].message, line, (EXTENDS,)) from None
    base, base_origins = _load_tree(parent_path, chain + (path,))
    return merge(base, data), base_origins | origins


def _resolve_python_path(data: dict[str, Any], folder: Path) -> None:
    """Make the paths an env section names absolute, from ``folder``: ``env.python_path``'s folders, and the word
    lists or tokenizer folders of ``env.kwargs.vocabularies`` given as paths (left as they are where malformed: the
    schema or the env reports those). A run saves them resolved, so it reopens from any folder."""
    env = data.get("env")
    if not isinstance(env, dict):
        return
    paths = env.get("python_path")
    if isinstance(paths, list):
        env["python_path"] = [str((folder / entry).resolve()) if isinstance(entry, str) else entry for entry in paths]
    kwargs = env.get("kwargs")
    vocabularies = kwargs.get("vocabularies") if isinstance(kwargs, dict) else None
    if isinstance(vocabularies, dict):
        for name, source in vocabularies.items():
            if isinstance(source, str):
                vocabularies[name] = str((folder / source).resolve())


def apply_override(data: dict[str, Any], origins: Origins, assignment: str) -> None:
    """Apply one ``dotted.path=value`` override; the value is parsed as YAML (so ``3`` is an int)."""
    source = f"--set {assignment}"
    dotted, separator, raw_value = assignment.partition("=")
    parts = dotted.strip().split(".")
    if not separator or not all(parts):
        raise ScenarioError.single(source, "expected dotted.path=value, e.g. train.frames=10000")
    try:
        value = parse_yaml(raw_value)
    except yaml.YAMLError as error:
        raise ScenarioError.single(source, f"value is not valid YAML: {getattr(error, 'problem', error)}") from None
    container: Any = data
    path: list[str | int] = []
    for part in parts[:-1]:
        key: str | int = int(part) if isinstance(container, list) and part.isdigit() else part
        path.append(key)
        if isinstance(container, dict):
            if not isinstance(container.get(key), (dict, list)):
                container[key] = {}
            container = container[key]
        elif isinstance(container, list) and isinstance(key, int) and key < len(container):
            container = container[key]
        else:
            raise ScenarioError.single(source, f"cannot set inside {'.'.join(map(str, path[:-1]))!r}", path=tuple(path))
    last: str | int = int(parts[-1]) if isinstance(container, list) and parts[-1].isdigit() else parts[-1]
    if isinstance(container, list) and not (isinstance(last, int) and last < len(container)):
        raise ScenarioError.single(source, f"index {parts[-1]} is out of range", path=tuple(path))
    container[last] = value
    full_path = tuple(path) + (last,)
    for existing in [key for key in origins if key[: len(full_path)] == full_path]:
        del origins[existing]
    origins[full_path] = Origin(source)


def load(reference: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Load, merge, override and validate a scenario file or built-in scenario name."""
    path = resolve_scenario(reference)
    data, origins = _load_tree(path, ())
    for assignment in overrides:
        apply_override(data, origins, assignment)
    _resolve_python_path(data, Path.cwd())
    try:
        return Scenario.model_validate(data)
    except ValidationError as error:
        raise from_validation(error, Scenario, data, origins, Origin(str(path))) from None


def to_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario as YAML (every field, defaults included)."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
