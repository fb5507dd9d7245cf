"""``cwa2mqtt simulate``: the simulator as a foreground process (called by `bridge.cli`)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import yaml

from bridge.errors import ConfigError
from bridge.simulator import scenario
from bridge.simulator.options import SimOptions, SimUser
from bridge.simulator.simulator import Simulator

_FIELDS = ("uri", "username", "password", "name", "availability", "activity", "note", "note_type")


def parse_listen(text: str, default_port: int = 0) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``HOST`` (IPv6 in brackets: ``[::1]:8080``)."""
    text = text.strip()
    if not text:
        return "127.0.0.1", default_port
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad listen address {text!r}: expected HOST:PORT")
    return host, int(port)


def load_users_file(path: str) -> list[SimUser]:
    """A YAML list; each entry needs ``uri``; username, password, name, availability, activity,
    note (and note_type, contacts) are optional. Problems raise `ValueError` naming the entry."""
    data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise TypeError(f"{path}: expected a YAML list of users")
    users: list[SimUser] = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("uri"), str):
            raise TypeError(f"{path}: entry {index}: 'uri' is required")
        unknown = set(entry) - {*_FIELDS, "contacts"}
        if unknown:
            raise ValueError(f"{path}: entry {index}: unknown keys {sorted(unknown)}")
        fields = {k: entry[k] for k in _FIELDS if k in entry}
        for key in ("username", "password", "name", "activity", "note"):
            if key in fields and fields[key] is not None:
                fields[key] = str(fields[key])
        if "availability" in fields and fields["availability"] is not None:
            fields["availability"] = int(fields["availability"])
        users.append(SimUser(**fields, contacts=tuple(str(c) for c in entry.get("contacts") or ())))
    return users


def cli_main(
    listen: str, users_file: str | None, control_listen: str | None, auth: Literal["forms", "iwa"] = "forms"
) -> int:
    """Run until SIGINT/SIGTERM; prints how to sign in and the control API URL. Exit code 0
    (78 for a bad listen address or users file, or ``auth`` iwa without pyspnego)."""
    try:
        host, port = parse_listen(listen or "127.0.0.1:0")
        options = SimOptions(host=host, port=port, scenario="static" if users_file else "demo", auth=auth)
        if control_listen:
            options.control_port = parse_listen(control_listen)[1]
            options.control = True
        users = load_users_file(users_file) if users_file else None
    except (OSError, ValueError, TypeError, yaml.YAMLError) as exc:
        print(f"cwa2mqtt simulate: {exc}", file=sys.stderr)
        return 78
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        simulator = Simulator(users, options)
    except ConfigError as exc:  # auth iwa without the optional pyspnego
        for problem in exc.problems:
            print(f"cwa2mqtt simulate: {problem}", file=sys.stderr)
        return 78
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with simulator as sim:
            print(f"CWA simulator listening on {sim.url}")
            if auth == "iwa":
                print(f"  sign-in:  POST {sim.url}/iwa/logon.html  (NTLM; forms sign-in refused)")
            else:
                print(f"  sign-in:  POST {sim.url}/forms/logon.html")
            print(f"  command:  {sim.url}{options.command_path}")
            print(f"  data:     {sim.url}{options.data_path}")
            if users_file is None:
                print(f"  demo account: user {scenario.DEMO_USERNAME!s}  password {scenario.DEMO_PASSWORD}")
                print(f"                uri  {scenario.DEMO_URI}")
            else:
                print(f"  users from {users_file}: {len(sim.user_uris())}")
            print(f"control API: {sim.control_url}  (GET /users, /sessions, /stats; POST /faults/<name>)")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
