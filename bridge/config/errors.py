"""Pydantic's validation errors → ``key.path: message`` lines.

Built from ``loc``, ``type`` and ``msg`` only, never from ``input``, because the input may be a
password. Validators that find several problems below one field raise `Problems`, which is
unpacked here into one line per problem, each with its own key path.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from bridge.presence import ALL_STATUSES


class Problems(ValueError):
    """Several problems below one field; `items` are (relative loc, message). See `format_errors`."""

    def __init__(self, items: list[tuple[tuple[str | int, ...], str]]) -> None:
        self.items = items
        super().__init__("; ".join(msg for _, msg in items))


def why(exc: BaseException) -> str:
    """Why a file could not be read, in words (never the file's content)."""
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_MESSAGES = {
    "missing": "required",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "string_type": "must be a string (quote it in YAML)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "enum": "must be one of: " + ", ".join(ALL_STATUSES),
}


def format_errors(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per problem; `root` is the validated model, for "did you mean" on unknown keys."""
    return [f"{format_loc(loc)}: {msg}" for loc, msg, _ in error_items(exc, root)]


def error_items(exc: ValidationError, root: type[BaseModel]) -> list[tuple[tuple[str | int, ...], str, bool]]:
    """(loc, message, is-an-unknown-key) per problem, for callers that name the source themselves."""
    problems: list[tuple[tuple[str | int, ...], str, bool]] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, Problems):
            problems += [(loc + rel, msg, False) for rel, msg in cause.items]
            continue
        if kind == "value_error" and isinstance(cause, ValueError):
            msg = str(cause)
        elif kind == "missing" and loc == ("cwa", "password"):
            msg = (
                "required (set cwa.password, cwa.password_file, CWA2MQTT_CWA__PASSWORD "
                "or the credential cwa_password)"
            )
        elif kind == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(root, loc)
        elif kind == "literal_error":
            msg = f"must be {(err.get('ctx') or {}).get('expected', 'one of the allowed values')}"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            msg = "must be " + err["msg"].removeprefix("Input should be ")
        elif kind == "string_pattern_mismatch":
            msg = "may contain only a-z, 0-9, _ and -"
        elif kind == "string_too_short":
            msg = "must not be empty"
        else:
            msg = _MESSAGES.get(kind, err["msg"])
        problems.append((loc, msg, kind == "extra_forbidden"))
    return problems


def _did_you_mean(root: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = _model_of(field.annotation)
    fields = getattr(model, "model_fields", None)
    if not fields or not isinstance(loc[-1], str):
        return ""
    names = [f.alias or n for n, f in fields.items()]
    close = difflib.get_close_matches(loc[-1], names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
