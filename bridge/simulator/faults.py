"""Faults on demand: counted, per channel, consumed by the next matching responses.

The HTTP layer asks `FaultBoard.take` at fixed points of a request: ``drop`` and ``http_503``
before the request is processed (nothing happens server-side), ``malformed``/``hostile``/
``oversized``/``mutate`` replace an XML body after processing (the data channel's events stay
queued and are re-delivered on the next poll with the same AckId, §4.3), ``slow`` delays the
response. ``mutate`` differs from the others: its body is a seeded mutation of the real one and may
still be well-formed, so a client can be handed plausible but wrong content (a flipped eid, a
swapped availability) that it cannot tell from the truth.
The state-changing faults (`expire_tickets`, `kill_sessions`, `restart`, `throttle`,
`drop_subscriptions`) act on the world at once; `Faults` is the public face of both kinds.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

CHANNELS = ("any", "logon", "data", "command")
COUNTED = ("drop", "http_503", "malformed", "hostile", "oversized", "mutate", "slow")
HOSTILE_KINDS = ("alternate", "billion_laughs", "external_entity")


@dataclass(frozen=True)
class ArmedFault:
    """One armed fault taken for a response."""

    name: str
    size: int = 0
    delay_s: float = 0.0
    kind: str = ""
    seed: int = 0


@dataclass
class _Counter:
    remaining: int
    channel: str
    size: int = 0
    delay_s: float = 0.0
    kind: str = "alternate"
    seed: int = 0
    taken: int = 0


class FaultBoard:
    """Thread-safe counters of the counted faults (newest arming of a name replaces the old one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, _Counter] = {}

    def arm(self, name: str, n: int, channel: str = "any", **extra: Any) -> None:
        if name not in COUNTED:
            raise ValueError(f"unknown fault {name!r}; known: {COUNTED}")
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}")
        if n < 0:
            raise ValueError("n must be >= 0")
        kind = str(extra.get("kind", "alternate"))
        if kind not in HOSTILE_KINDS:
            raise ValueError(f"kind must be one of {HOSTILE_KINDS}")
        with self._lock:
            self._armed[name] = _Counter(
                n,
                channel,
                int(extra.get("size", 0)),
                float(extra.get("delay_s", 0.0)),
                kind,
                int(extra.get("seed", 0)),
            )

    def take(self, name: str, channel: str) -> ArmedFault | None:
        with self._lock:
            counter = self._armed.get(name)
            if counter is None or counter.remaining <= 0 or counter.channel not in ("any", channel):
                return None
            counter.remaining -= 1
            counter.taken += 1
            kind = counter.kind
            if name == "hostile" and kind == "alternate":
                kind = "billion_laughs" if counter.taken % 2 else "external_entity"
            # Each mutated body has its own seed, so a run is reproducible from the armed seed.
            return ArmedFault(name, counter.size, counter.delay_s, kind, counter.seed + counter.taken)

    def pending(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                name: {"remaining": c.remaining, "channel": c.channel}
                for name, c in self._armed.items()
                if c.remaining > 0
            }

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()


class Faults:
    """``sim.faults``: every fault of the brief, by its public name."""

    def __init__(self, board: FaultBoard, actions: dict[str, Callable[..., None]]) -> None:
        self._board = board
        self._actions = actions

    def clear(self) -> None:
        """Disarm every fault still waiting to fire."""
        self._board.clear()

    def expire_tickets(self) -> None:
        """Every ticket becomes unknown: the next request gets the `expired_ticket` answer."""
        self._actions["expire_tickets"]()

    def kill_sessions(self) -> None:
        """Every session ends (watchers see the users offline); later use gives 18100."""
        self._actions["kill_sessions"]()

    def restart(self) -> None:
        """Forget sessions, tickets and event ids; users' presence is kept (§7.2.5)."""
        self._actions["restart"]()

    def drop_subscriptions(self) -> None:
        """Every session's presence subscriptions end without a word (a front-end failover): later
        changes of those users are not delivered until the client queries or subscribes again."""
        self._actions["drop_subscriptions"]()

    def throttle(self, on: bool, poll_wait_ms: int = 10000) -> None:
        """While on: pollWaitTime is raised and commands are answered with 18101 (§7.2.6)."""
        self._actions["throttle"](on, poll_wait_ms)

    def http_503(self, n: int, channel: str = "any") -> None:
        self._board.arm("http_503", n, channel)

    def malformed(self, n: int, channel: str = "any") -> None:
        """The next n XML bodies are cut in half (not well-formed)."""
        self._board.arm("malformed", n, channel)

    def hostile(self, n: int, channel: str = "any", kind: str = "alternate") -> None:
        """The next n XML bodies are a billion-laughs or an external-entity document."""
        self._board.arm("hostile", n, channel, kind=kind)

    def oversized(self, n: int, size: int = 8_000_000, channel: str = "any") -> None:
        """The next n XML bodies are padded (valid XML) to ``size`` bytes."""
        self._board.arm("oversized", n, channel, size=size)

    def mutate(self, n: int, channel: str = "data", seed: int = 0) -> None:
        """The next n XML bodies are mutations of the real one (see `mutated_body`), from ``seed``."""
        self._board.arm("mutate", n, channel, seed=seed)

    def slow(self, n: int, delay_s: float, channel: str = "any") -> None:
        self._board.arm("slow", n, channel, delay_s=delay_s)

    def drop(self, n: int, channel: str = "any") -> None:
        """The next n requests get no response: the connection is closed."""
        self._board.arm("drop", n, channel)

    def apply(self, name: str, args: dict[str, Any]) -> None:
        """The control API's ``POST /faults/<name>``: the same names and keyword arguments."""
        if name in ("expire_tickets", "kill_sessions", "restart", "drop_subscriptions"):
            getattr(self, name)()
        elif name == "throttle":
            self.throttle(bool(args.get("on", True)), int(args.get("poll_wait_ms", 10000)))
        elif name in COUNTED:
            n = int(args.get("n", 1))
            channel = str(args.get("channel", "data" if name == "mutate" else "any"))
            extra = {k: args[k] for k in ("size", "delay_s", "kind", "seed") if k in args}
            if name == "oversized":
                extra.setdefault("size", 8_000_000)
            self._board.arm(name, n, channel, **extra)
        else:
            raise ValueError(f"unknown fault {name!r}")


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'.encode()
        for i in range(1, 10)
    )
    + b']>\n<cwaEvents sid="0" ackId="0" pollWaitTime="1000">&lol9;</cwaEvents>\n'
)

EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE cwaEvents [\n <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
    b'<cwaEvents sid="0" ackId="0" pollWaitTime="1000"><userNotice>&xxe;</userNotice></cwaEvents>\n'
)


def hostile_body(kind: str) -> bytes:
    return BILLION_LAUGHS if kind == "billion_laughs" else EXTERNAL_ENTITY


def malformed_body(body: bytes) -> bytes:
    """Truncated XML: never well-formed, because the root element is never closed."""
    return body[: max(1, len(body) // 2)]


def oversized_body(body: bytes, size: int) -> bytes:
    """Valid XML of at least ``size`` bytes: trailing whitespace after the root element is allowed."""
    return body + b" " * max(0, size - len(body))


MUTATIONS = ("flip", "truncate", "delete", "duplicate", "swap", "huge", "unknown")
_HUGE = ("99999999999999999999999999", "-1", "18446744073709551616", "2147483648", "1e308", "0x10", "")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def mutated_body(body: bytes, seed: int) -> tuple[bytes, str]:
    """A mutation of a real XML body and its name (one of `MUTATIONS`), the same for the same seed.

    Byte flips and truncation usually break well-formedness; the tree mutations (a deleted or
    duplicated element, two attribute values swapped, a number made huge or odd, an unknown element
    inserted) keep it, so they test what a client does with plausible nonsense.
    """
    rng = random.Random(seed)
    kind = rng.choice(MUTATIONS)
    if kind == "flip" or not body:
        out = bytearray(body or b"<")
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out), "flip"
    if kind == "truncate":
        return body[: rng.randrange(len(body))], kind
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return body[: rng.randrange(len(body))], "truncate"
    elements = list(root.iter())
    inner = [e for e in elements if e is not root and isinstance(e.tag, str)]
    attrs = [(e, a) for e in elements if isinstance(e.tag, str) for a in e.attrib]
    numbers = [(e, a) for e, a in attrs if e.get(a, "").lstrip("-").isdigit()]
    if kind == "delete" and inner:
        victim = rng.choice(inner)
        victim.getparent().remove(victim)
    elif kind == "duplicate" and inner:
        original = rng.choice(inner)
        original.addnext(copy.deepcopy(original))
    elif kind == "swap" and len(attrs) >= 2:
        (e1, a1), (e2, a2) = rng.sample(attrs, 2)
        v1, v2 = e1.get(a1), e2.get(a2)
        e1.set(a1, v2)
        e2.set(a2, v1)
    elif kind == "huge" and numbers:
        element, attr = rng.choice(numbers)
        element.set(attr, rng.choice(_HUGE))
    else:
        kind = "unknown"
        parent = rng.choice([e for e in elements if isinstance(e.tag, str)])
        namespace = rng.choice(["urn:cwa2mqtt:fuzz", etree.QName(root).namespace or ""])
        tag = f"{{{namespace}}}futureThing" if namespace else "futureThing"
        stranger = etree.Element(tag, eid=str(rng.randint(0, 10**6)), mode=rng.choice(["x", "", "∞"]))
        stranger.text = rng.choice(["", "text", "\u00e9\u6f22\U0001f600"])
        parent.insert(rng.randint(0, len(parent)), stranger)
    declared = body.lstrip().startswith(b"<?xml")
    return bytes(etree.tostring(root, encoding="utf-8", xml_declaration=declared)), kind
