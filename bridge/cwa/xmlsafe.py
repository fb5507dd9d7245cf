"""The one hardened way this project turns untrusted bytes into an lxml tree.

A presence protocol never needs a DTD, so any ``<!DOCTYPE``/``<!ENTITY`` is refused outright
(billion laughs, external entities / XXE). The parser additionally never resolves entities, never
touches the network, keeps libxml2's default depth/size limits (``huge_tree=False``) and drops
comments and processing instructions. The size limit is checked before any parsing happens.

Every failure is the single exception `CwaProtocolError`, whose excerpt is the start of the body
with control characters removed and cut before anything that looks like a secret.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.errors import CwaProtocolError

DEFAULT_MAX_BYTES = 4 * 1024 * 1024
EXCERPT_CHARS = 80

# One parser for the process: lxml serialises use of a parser object internally, and building a
# parser per call would cost more than the parse of a typical event batch.
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)

# Byte-level refusal before parsing; the post-parse docinfo check covers other encodings (UTF-16).
_DTD_MARKERS = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Anything from the first of these words on is dropped from an excerpt (logon bodies, headers).
_SECRET_HINT = re.compile(r"pass|ticket|secret|token|auth|cred", re.IGNORECASE)


def excerpt(body: bytes | bytearray | memoryview | str | None, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``body`` for an error message: printable, short, and secret-free.

    Only the first ``limit`` characters are considered, so nothing deep in a body (a password in
    a logon, a ticket) can leak; the excerpt also ends before any word that hints at a secret.
    """
    if body is None:
        return ""
    try:
        if isinstance(body, str):
            text = body[: limit * 4]
        else:
            text = bytes(body[: limit * 4]).decode("utf-8", errors="replace")
    except Exception:  # an excerpt must never be the thing that fails
        return ""
    text = _CONTROL.sub(" ", text)[:limit]
    hint = _SECRET_HINT.search(text)
    if hint is not None:
        text = text[: hint.start()] + "…"
    return text.strip()


def _as_bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    raise CwaProtocolError(f"expected bytes, got {type(body).__name__}")


def parse(body: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse ``body`` into its root element, or raise `CwaProtocolError` (and nothing else).

    Refuses: more than ``max_bytes`` bytes, an empty body, anything with a DTD or entity
    declaration, and anything that is not well-formed XML.
    """
    data = _as_bytes(body)
    if len(data) > max_bytes:
        raise CwaProtocolError(f"body of {len(data)} bytes exceeds the limit of {max_bytes}", excerpt(data))
    if not data or data.isspace():
        raise CwaProtocolError("empty body")
    # `b"!" in data` is a memchr, several times cheaper than the case-insensitive regex on a body
    # without any "!" (most event bodies): no "!", no "<!DOCTYPE"/"<!ENTITY" in these bytes.
    if b"!" in data and _DTD_MARKERS.search(data) is not None:
        raise CwaProtocolError("DTDs and entity declarations are not allowed", excerpt(data))
    try:
        root = etree.fromstring(data, _PARSER)
    # `from None`: lxml's own message can quote input bytes (an encoding error shows the offending
    # bytes, which may be part of a password), and a chained cause would print it in tracebacks.
    except etree.XMLSyntaxError as exc:
        line, column = getattr(exc, "position", (0, 0)) or (0, 0)
        raise CwaProtocolError(f"not well-formed XML (line {line}, column {column})", excerpt(data)) from None
    except Exception as exc:  # ValueError, MemoryError, RecursionError...: one error type for all
        raise CwaProtocolError(f"unparseable body ({type(exc).__name__})", excerpt(data)) from None
    if root is None:
        raise CwaProtocolError("no root element", excerpt(data))
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise CwaProtocolError("DTDs and entity declarations are not allowed", excerpt(data))
    return root


def local_name(tag: object) -> str | None:
    """``{ns}name`` or ``name`` → ``name``; ``None`` for comments, PIs and entities (non-str tags)."""
    if not isinstance(tag, str):
        return None
    if tag[:1] == "{":
        return tag[tag.find("}") + 1 :]
    return tag
