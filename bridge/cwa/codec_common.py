"""Constants, `WireStyle` and the small lenient readers/writers every codec module shares.

`bridge.cwa.codec` re-exports the public names; import them from there.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa.xmlsafe import DEFAULT_MAX_BYTES, local_name

__all__ = [
    "DEFAULT_MAX_BYTES",
    "NOTE_INSTANCE_MASK",
    "NS_CONTACTCARD",
    "NS_CWA",
    "NS_NOTE",
    "NS_STATE",
    "NS_XSI",
    "USER_STATE_INSTANCE_MASK",
    "WireStyle",
    "local_name",
]

NS_CWA = "http://schemas.microsoft.com/2006/09/rtc/cwa"
NS_STATE = "http://schemas.microsoft.com/2006/09/sip/state"
NS_NOTE = "http://schemas.microsoft.com/2006/09/sip/note"
NS_CONTACTCARD = "http://schemas.microsoft.com/2006/09/sip/contactcard"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"

USER_STATE_INSTANCE_MASK = 536870912  # 0x20000000, the userState family (§3.7, §8.11)
NOTE_INSTANCE_MASK = 0


@dataclass(frozen=True, slots=True)
class WireStyle:
    """Server-side choices among documented alternatives (docs/protocol.md §8)."""

    initiate_form: Literal["elements", "attributes"] = "elements"  # §8.2
    instance_attr: Literal["instance", "instanceMask"] = "instance"  # §8.15


# --------------------------------------------------------------------------- reading (lenient)

Element = Any  # an lxml element; never leaves the codec


def to_int(value: str | None) -> int | None:
    """A lenient integer: anything that is not one (or absent) is ``None``, never an error."""
    if value is None:
        return None
    try:
        return int(value.strip())
    except (ValueError, TypeError):
        return None


def to_bool(value: str | None, default: bool) -> bool:
    """``true``/``1`` and ``false``/``0`` (xsd:boolean, any case); anything else is ``default``."""
    if value is None:
        return default
    token = value.strip().lower()
    if token in ("true", "1"):
        return True
    if token in ("false", "0"):
        return False
    return default


def to_opt_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    token = value.strip().lower()
    if token in ("true", "1"):
        return True
    if token in ("false", "0"):
        return False
    return None


# Local names by full tag. lxml hands out a fresh tag string per access; a dict lookup is cheaper than
# slicing it, and the set of tags in CWA traffic is small (bounded anyway against hostile input).
NAMES: dict[object, str] = {}
_NAMES_MAX = 2048


def name_of(tag: object) -> str:
    """Local name of ``tag`` (``""`` for a comment/PI/entity node). Hot callers first try `NAMES`."""
    if not isinstance(tag, str):
        return ""
    name = tag[tag.find("}") + 1 :] if tag[:1] == "{" else tag
    if len(tag) <= 200:  # a hostile body must not be able to park megabytes of names here
        if len(NAMES) >= _NAMES_MAX:
            NAMES.clear()
        NAMES[tag] = name
    return name


def children(el: Element) -> list[tuple[str, Element]]:
    """Element children as ``(local name, element)``, whatever their namespace (or none)."""
    out: list[tuple[str, Element]] = []
    names = NAMES
    for kid in el:
        tag = kid.tag
        name = names.get(tag) or name_of(tag)
        if name:
            out.append((name, kid))
    return out


def child(el: Element, name: str) -> Element | None:
    """The first element child with local name ``name``."""
    names = NAMES
    for kid in el:
        tag = kid.tag
        if (names.get(tag) or name_of(tag)) == name:
            return kid
    return None


def child_text(el: Element, name: str) -> str | None:
    """Text of the first child called ``name``; ``""`` for an empty one, ``None`` when absent."""
    found = child(el, name)
    if found is None:
        return None
    text = found.text
    return text if isinstance(text, str) else ""


def attr(el: Element, name: str) -> str | None:
    """An attribute by local name: plain first, else any namespaced spelling (``{ns}name``)."""
    attrib = el.attrib
    value = attrib.get(name)
    if value is not None:
        return str(value)
    if len(attrib):
        suffix = "}" + name
        for key, val in attrib.items():
            if key.endswith(suffix):
                return str(val)
    return None


def strip_prefix(value: str | None) -> str | None:
    """``st:userState`` → ``userState`` (the prefix of an ``xsi:type`` value is irrelevant here)."""
    if value is None:
        return None
    value = value.strip()
    return value.rpartition(":")[2] if ":" in value else value


# --------------------------------------------------------------------------- writing

# Characters XML 1.0 cannot carry at all; lxml refuses them, so a stray control character in a note
# typed by a user must not make the whole publish fail.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def sub(parent: Element, tag: str, text: str | None = None, /, **attrs: str | None) -> Element:
    """Append a child; ``None`` attributes are left out (positional-only: ``tag`` is also an attribute)."""
    el = etree.SubElement(parent, tag)
    for key, value in attrs.items():
        if value is not None:
            el.set(key, clean(value))
    if text is not None:
        el.text = clean(text)
    return el


def bool_text(value: bool) -> str:
    return "true" if value else "false"


def serialize(root: Element) -> bytes:
    """UTF-8 with an XML declaration, as the OSS client sends (§1.2)."""
    data = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    assert isinstance(data, bytes)  # noqa: S101 - lxml's contract for encoding="utf-8"
    return data
