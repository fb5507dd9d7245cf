"""The control API: JSON over HTTP on its own loopback port (documented in README.md here).

GET  /users                 every user (no passwords) with its current truth
GET  /users/<uri>           one user
POST /users                 add: {"uri": ..., "username"?, "password"?, "name"?, "availability"?, ...}
PATCH /users/<uri>          change: any of availability, activity, note, note_type, name

Wherever an availability is taken (PATCH, POST /users, a ``--users`` file) a status name works
too: ``"busy"`` is 6500, the number CWA itself sets for a manual busy; ``null`` signs the user out.
POST /faults/<name>         {"n": 2, "channel": "data", ...} — the names of `Faults`
GET  /recordings            every recorded request
GET  /sessions              session snapshots
GET  /stats                 counters
POST /reset-recordings      forget the recordings
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from bridge.presence import REPRESENTATIVE_AVAILABILITY, Presence, Status, format_timestamp
from bridge.simulator.faults import Faults
from bridge.simulator.options import SimUser
from bridge.simulator.recording import Recorded, SessionSnapshot
from bridge.simulator.server import Reply, Request


class Controlled(Protocol):
    """What the control API needs of the simulator (`bridge.simulator.Simulator`)."""

    @property
    def faults(self) -> Faults: ...

    @property
    def recordings(self) -> Sequence[Recorded]: ...

    def user_uris(self) -> list[str]: ...

    def user(self, uri: str) -> SimUser: ...

    def truth(self, uri: str) -> Presence: ...

    def add_user(self, user: SimUser) -> None: ...

    def set_presence(
        self,
        uri: str,
        *,
        availability: Any = ...,
        activity: Any = ...,
        note: Any = ...,
        name: Any = ...,
        note_type: Any = ...,
    ) -> None: ...

    def sessions(self) -> list[SessionSnapshot]: ...

    def stats(self) -> dict[str, Any]: ...

    def clear_recordings(self) -> None: ...


_PATCHABLE = ("availability", "activity", "note", "note_type", "name")
_STATUS_NAMES = ", ".join(f"{s.value} ({n})" for s, n in REPRESENTATIVE_AVAILABILITY.items())
_USER_FIELDS = ("uri", "username", "password", "name", "availability", "activity", "note", "note_type")


class ControlApi:
    def __init__(self, sim: Controlled) -> None:
        self._sim = sim

    def __call__(self, request: Request) -> Reply:
        try:
            return self._route(request)
        except KeyError as exc:
            return _json({"error": str(exc.args[0]) if exc.args else "not found"}, 404)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)

    def _route(self, request: Request) -> Reply:
        path = urlsplit(request.path).path.rstrip("/") or "/"
        method = request.method
        sim = self._sim
        if path == "/users" and method == "GET":
            return _json([self._user_json(uri) for uri in sim.user_uris()])
        if path == "/users" and method == "POST":
            sim.add_user(_user_from(_body(request)))
            return _json(self._user_json(str(_body(request)["uri"])), 201)
        if path.startswith("/users/"):
            uri = unquote(path[len("/users/") :])
            if method == "GET":
                return _json(self._user_json(uri))
            if method == "PATCH":
                body = _body(request)
                unknown = set(body) - set(_PATCHABLE)
                if unknown:
                    raise ValueError(f"cannot change {sorted(unknown)}; allowed: {list(_PATCHABLE)}")
                if "availability" in body:
                    body["availability"] = _availability(body["availability"])
                sim.set_presence(uri, **body)
                return _json(self._user_json(uri))
        if path.startswith("/faults/") and method == "POST":
            sim.faults.apply(path[len("/faults/") :], _body(request))
            return _json({"status": "ok", "pending": sim.stats()["faults_pending"]})
        if path == "/recordings" and method == "GET":
            return _json([r.to_json() for r in sim.recordings])
        if path == "/sessions" and method == "GET":
            return _json([s.to_json() for s in sim.sessions()])
        if path == "/stats" and method == "GET":
            return _json(sim.stats())
        if path == "/reset-recordings" and method == "POST":
            sim.clear_recordings()
            return _json({"status": "ok"})
        return _json({"error": f"no route {method} {path}"}, 404)

    def _user_json(self, uri: str) -> dict[str, Any]:
        user = self._sim.user(uri)
        truth = self._sim.truth(uri)
        return {
            "uri": user.uri,
            "username": user.username,
            "can_sign_in": bool(user.username and user.password is not None),
            "name": user.name,
            "availability": user.availability,
            "activity": user.activity,
            "note": user.note,
            "note_type": user.note_type,
            "contacts": list(user.contacts),
            "truth": {
                "status": truth.status.value,
                "idle": truth.idle,
                "availability": truth.availability,
                "activity": truth.activity,
                "note": truth.note,
                "note_type": truth.note_type,
                "out_of_office": truth.out_of_office,
                "last_change": format_timestamp(truth.last_change),
            },
        }


def _body(request: Request) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    data = json.loads(request.body)
    if not isinstance(data, dict):
        raise TypeError("the body must be a JSON object")
    return data


def availability_of(value: Any) -> int | None:
    """An availability number (any, to simulate odd servers too), a status name (``"busy"``,
    ``"do not disturb"``) or None (signed out); `ValueError` saying what is accepted otherwise."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, str):
        name = "_".join(value.strip().lower().replace("-", " ").split())
        try:
            return REPRESENTATIVE_AVAILABILITY[Status(name)]
        except (ValueError, KeyError):
            raise ValueError(f"{value!r} is neither a number nor a status ({_STATUS_NAMES})") from None
    raise ValueError(f"must be a number or a status name, not {type(value).__name__}")


def _availability(value: Any) -> int | None:
    try:
        return availability_of(value)
    except ValueError as exc:
        raise ValueError(f"availability: {exc}") from None


def _user_from(data: dict[str, Any]) -> SimUser:
    if not isinstance(data.get("uri"), str) or not data["uri"]:
        raise ValueError("uri is required")
    unknown = set(data) - {*_USER_FIELDS, "contacts"}
    if unknown:
        raise ValueError(f"unknown user fields {sorted(unknown)}")
    fields = {k: data[k] for k in _USER_FIELDS if k in data}
    if "availability" in fields:
        fields["availability"] = _availability(fields["availability"])
    return SimUser(**fields, contacts=tuple(data.get("contacts", ())))


def _json(data: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode(), content_type="application/json")
