"""The config file: read it and parse its YAML into a document (a mapping of top-level keys).

Parsed here rather than by pydantic-settings so that a syntax error carries a line and column.
Every failure is a `ConfigError` naming the file.

Two loaders with the same rules. `_FastLoader` has libyaml scan and parse (a 10,000-user watch
list: ~0.5 s instead of ~1.8 s with PyYAML's pure-Python scanner, all of it before the bridge
can publish anything); it is used whenever PyYAML was built with libyaml. `_Loader` is pure
Python: the fallback without libyaml, and the one that words every error. libyaml's messages and
marks differ from PyYAML's, so a document the fast loader refuses is parsed again by `_Loader`,
and the user sees exactly the message PyYAML gives (and, should libyaml refuse something PyYAML
accepts, PyYAML's document).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from bridge.config.errors import why
from bridge.errors import ConfigError


class _Rules(SafeConstructor):
    """Safe YAML with duplicate keys reported instead of silently overwritten (and keys that are
    lists or mappings refused). The resolvers below drop YAML 1.1's sexagesimal numbers."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            problem = "a key must be a plain value" if isinstance(key, list | dict) else None
            problem = problem or (f"duplicate key {key!r}" if key in seen else None)
            if problem:
                raise ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Loader(_Rules, yaml.SafeLoader):
    """Pure Python: PyYAML's scanner, parser and composer."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)

_FastLoader: type[Any] | None
try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    _FastLoader = None
else:

    class _CLoader(Composer, CParser, _Rules, Resolver):
        """libyaml's scanner and parser under PyYAML's Python composer. Not `yaml.CSafeLoader`:
        its composer recurses in C without a limit, and 100,000 nested ``[`` overflowed the C
        stack (the process died of SIGSEGV); the Python composer ends in a RecursionError."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            _Rules.__init__(self)
            Resolver.__init__(self)

        def compose_scalar_node(self, anchor: Any) -> yaml.ScalarNode:
            # PyYAML's parser resolves a scalar tagged with the bare ``!`` as if untagged,
            # ``key: !`` included (null); libyaml does not for an empty one (an empty string).
            event = self.peek_event()
            if isinstance(event, yaml.ScalarEvent) and event.tag == "!":
                event.implicit = (True, False)
            return super().compose_scalar_node(anchor)

    _CLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _FastLoader = _CLoader


# Where libyaml reads differently from PyYAML, found by a differential fuzz of the two loaders
# (mutated config files and random YAML-ish text): a tab (PyYAML refuses one inside a plain
# scalar, libyaml keeps it), a byte-order mark after the start (libyaml skips one at the start of
# any line, PyYAML keeps it in the value), a comment right after a block scalar's ``|`` or ``>``
# (PyYAML refuses it, libyaml takes it), and ``?`` in a plain scalar inside ``[...]``/``{...}``
# (PyYAML ends the scalar there and refuses the rest). Such text goes to `_Loader` only.
_BLOCK_SCALAR_COMMENT = re.compile(r"[|>][-+0-9]*#")


def _libyaml_reads_alike(text: str) -> bool:
    if "\t" in text or text.find("\ufeff", 1) >= 0:
        return False
    if "?" in text and ("[" in text or "{" in text):
        return False
    return _BLOCK_SCALAR_COMMENT.search(text) is None


def read_document(file: Path) -> dict[str, Any]:
    """Read and parse the config file; every failure is a `ConfigError` naming the file."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: config file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read the config file ({why(exc)})"]) from None
    try:
        document = _parse(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        raise ConfigError([f"{where}: YAML syntax error: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: YAML error: {' '.join(str(exc).split())}"]) from None
    except RecursionError:
        raise ConfigError([f"{file}: YAML nested too deeply"]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError([f"{file}: the top level must be a mapping of keys, not {_kind(document)}"])
    bad = [k for k in document if not isinstance(k, str)]
    if bad:
        raise ConfigError([f"{file}: top-level keys must be names, not {_kind(bad[0])}"])
    return document


def _parse(text: str) -> Any:
    if _FastLoader is not None and _libyaml_reads_alike(text):
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506  # _Rules is a SafeConstructor
        except yaml.YAMLError:
            pass  # word the error as PyYAML does (module docstring)
    return yaml.load(text, Loader=_Loader)  # noqa: S506  # _Loader is a SafeLoader


def _kind(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )
