"""Built-in scenarios: the YAML files shipped in this package, named by their file stem."""

from __future__ import annotations

from pathlib import Path

from himo.scenarios.errors import ScenarioError, with_suggestion

SCENARIO_FOLDER = Path(__file__).parent
DEFAULT_SCENARIO = "beacon"
"""The scenario ``make demo`` runs and ``himo list`` shows first."""


def builtin_scenarios() -> dict[str, Path]:
    """Built-in scenario names and their files, the default first, then alphabetical."""
    files = {path.stem: path for path in sorted(SCENARIO_FOLDER.glob("*.yaml"))}
    ordered = {DEFAULT_SCENARIO: files.pop(DEFAULT_SCENARIO)} if DEFAULT_SCENARIO in files else {}
    return ordered | files


def resolve_scenario(reference: str | Path, relative_to: Path | None = None) -> Path:
    """The file a scenario reference names: a path (relative to ``relative_to`` if given) or a built-in name."""
    candidate = Path(reference)
    if relative_to is not None and not candidate.is_absolute():
        candidate = relative_to / candidate
    if candidate.is_file():
        return candidate.resolve()
    builtins = builtin_scenarios()
    if str(reference) in builtins:
        return builtins[str(reference)]
    looked_for = candidate.absolute()
    # A name that looks like a file (a suffix or a folder) is reported as a missing file, anything else as a name.
    named = Path(reference)
    if named.suffix in (".yaml", ".yml") or named.parent != Path("."):
        message = f"scenario file not found: {str(reference)!r} (looked for {looked_for})"
        raise ScenarioError.single(str(candidate), message)
    message = (
        f"no scenario file or built-in scenario named {str(reference)!r} (looked for {looked_for}); "
        f"built-ins: {sorted(builtins)}"
    )
    raise ScenarioError.single(str(reference), with_suggestion(message, str(reference), list(builtins)))
