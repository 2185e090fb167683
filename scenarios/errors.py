"""Scenario errors that name the file, the line, the dotted field path and what was expected."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file and line, or a command-line override."""

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario."""

    origin: Origin
    path: FieldPath
    message: str

    def __str__(self) -> str:
        dotted = ".".join(str(part) for part in self.path)
        return f"{self.origin}: {dotted}: {self.message}" if dotted else f"{self.origin}: {self.message}"


class FieldProblem(ValueError):
    """A cross-field validation error that knows the dotted path of the offending field."""

    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.path = path


class ScenarioError(Exception):
    """A scenario could not be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @classmethod
    def single(cls, source: str, message: str, line: int | None = None, path: FieldPath = ()) -> ScenarioError:
        """An error with one problem."""
        return cls([Problem(Origin(source, line), path, message)])


def closest(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to ``word`` in spelling, if any is close enough."""
    matches = difflib.get_close_matches(str(word), [str(candidate) for candidate in candidates], n=1, cutoff=0.6)
    return matches[0] if matches else None


def with_suggestion(message: str, word: str, candidates: Sequence[str]) -> str:
    """``message`` followed by "did you mean ...?" when a candidate is close to ``word``."""
    suggestion = closest(word, candidates)
    return f"{message}; did you mean {suggestion!r}?" if suggestion else message


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` wrappers."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Union and type(None) in typing.get_args(annotation):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _tagged_member(union: Any, tag: Any) -> Any:
    """The member of a discriminated union whose literal tag field equals ``tag``."""
    for member in typing.get_args(union):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for field in member.model_fields.values():
                if tag in typing.get_args(field.annotation):
                    return member
    return None


def fields_at(model: type[BaseModel], location: FieldPath) -> list[str]:
    """Names of the fields allowed at ``location`` (a pydantic error location) under ``model``."""
    current: Any = model
    for part in location:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                return []
            current = current.model_fields[part].annotation
        elif origin in (Mapping, dict, typing.Mapping):
            current = typing.get_args(current)[1]
        elif origin in (typing.Union, types.UnionType):
            current = _tagged_member(current, part)
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def data_path(data: Any, location: FieldPath) -> FieldPath:
    """The part of a pydantic error location that exists in the raw data (drops union tags)."""
    path: list[str | int] = []
    current = data
    for part in location:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
            path.append(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
            path.append(part)
        elif isinstance(current, Mapping):
            continue  # a union tag or a field that is absent from the file
        else:
            break
    return tuple(path)


def _message(error: Mapping[str, Any], model: type[BaseModel], location: FieldPath) -> str:
    kind = error["type"]
    context = error.get("ctx", {})
    if kind == "extra_forbidden":
        allowed = fields_at(model, location[:-1])
        message = f"unknown field {location[-1]!r}"
        parent = location[:-1]
        if parent and isinstance(parent[-1], str) and parent[-1] not in fields_at(model, parent[:-1]):
            # The section is one member of a tagged union (e.g. an algorithm): say which, and what it has.
            message += f" for {parent[-1]}; its fields are {allowed}"
        return with_suggestion(message, str(location[-1]), allowed)
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        expected = [tag.strip(" '") for tag in str(context.get("expected_tags", "")).split(",")]
        message = f"unknown {context.get('discriminator', 'tag').strip(chr(39))} {context.get('tag')!r}; expected one of {expected}"
        return with_suggestion(message, str(context.get("tag")), expected)
    if kind == "union_tag_not_found":
        return f"missing {context.get('discriminator', 'tag')} field"
    if kind == "literal_error":
        expected = [option.strip(" '") for option in str(context.get("expected", "")).replace(" or ", ",").split(",")]
        return with_suggestion(f"{error['input']!r} is not allowed; expected one of {expected}", str(error["input"]), expected)
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    return f"{error['msg']} (got {error['input']!r})"


def from_validation(
    error: ValidationError, model: type[BaseModel], data: Any, origins: Mapping[FieldPath, Origin], fallback: Origin
) -> ScenarioError:
    """Turn pydantic's errors into problems that name the file, line and dotted path."""
    problems = []
    for detail in error.errors():
        location = tuple(detail["loc"])
        cause = detail.get("ctx", {}).get("error")
        if isinstance(cause, FieldProblem):
            location = location + cause.path
        if detail["type"] == "union_tag_invalid":  # the offending value is the tag field itself
            location = location + (str(detail["ctx"]["discriminator"]).strip("'"),)
        path = data_path(data, location)
        # The offending key itself is not in the data when it is missing; name it all the same.
        shown = path if detail["type"] != "missing" else path + location[len(location) - 1 :]
        origin = next((origins[path[:end]] for end in range(len(path), -1, -1) if path[:end] in origins), fallback)
        problems.append(Problem(origin, shown, _message(detail, model, location)))
    return ScenarioError(problems)


class RunError(Exception):
    """A run stopped; the message says why and where its last good checkpoint is."""
