"""``cwa2mqtt simulate``: the simulator as a foreground process (called by `bridge.cli`)."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import yaml

from bridge.config.errors import why
from bridge.errors import ConfigError
from bridge.simulator import scenario
from bridge.simulator.control import availability_of
from bridge.simulator.options import SimOptions, SimUser
from bridge.simulator.simulator import Simulator

_FIELDS = ("uri", "username", "password", "name", "availability", "activity", "note", "note_type")
_KEYS = frozenset({*_FIELDS, "contacts"})


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
    """A YAML list; each entry needs ``uri``; username, password, name, availability (a number or
    a status name), activity, note (and note_type, contacts) are optional. Every problem is
    reported at once, as a `ConfigError` naming the entry (index and uri) and the key."""
    try:
        data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the users file ({why(exc)})"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise ConfigError([f"{where}: YAML syntax error: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML error: {' '.join(str(exc).split())}"]) from None
    if not isinstance(data, list):
        raise ConfigError([f"{path}: expected a YAML list of users, each with at least a uri"])
    problems: list[str] = []
    users: list[SimUser] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data):
        uri = entry.get("uri") if isinstance(entry, dict) else None
        where = f"{path}: entry {index}" + (f" ({uri})" if isinstance(uri, str) else "")
        found = _entry_problems(entry, seen, index)
        problems += [f"{where}: {problem}" for problem in found]
        if not found:
            users.append(_user(entry))
    if problems:
        raise ConfigError(problems)
    return users


def _entry_problems(entry: Any, seen: dict[str, int], index: int) -> list[str]:
    if not isinstance(entry, dict):
        return ["must be a mapping with at least uri"]
    problems = [
        f"{key}: unknown key (known: {', '.join(_FIELDS)}, contacts)" for key in entry if key not in _KEYS
    ]
    uri = entry.get("uri")
    if not isinstance(uri, str) or not uri.lower().startswith("sip:"):
        problems.append("uri: required, a SIP URI like sip:bob@example.org")
    elif (first := seen.setdefault(uri.lower(), index)) != index:
        problems.append(f"uri: already listed as entry {first}")
    for key in ("username", "password", "name", "activity", "note", "note_type"):
        if not isinstance(entry.get(key), str | int | float | None) or isinstance(entry.get(key), bool):
            problems.append(f"{key}: must be text")
    try:
        availability_of(entry.get("availability"))
    except ValueError as exc:
        problems.append(f"availability: {exc}")
    contacts = entry.get("contacts") or []
    if not isinstance(contacts, list) or not all(isinstance(c, str) for c in contacts):
        problems.append("contacts: must be a list of SIP URIs")
    return problems


def _user(entry: dict[str, Any]) -> SimUser:
    fields = {k: entry[k] for k in _FIELDS if k in entry}
    for key in ("username", "password", "name", "activity", "note", "note_type"):
        if fields.get(key) is not None:
            fields[key] = str(fields[key])
    if "availability" in fields:
        fields["availability"] = availability_of(fields["availability"])
    return SimUser(**fields, contacts=tuple(entry.get("contacts") or ()))


def cli_main(
    listen: str, users_file: str | None, control_listen: str | None, auth: Literal["forms", "iwa"] = "forms"
) -> int:
    """Run until SIGINT/SIGTERM; prints how to sign in, the users and the control API URL. Exit
    code 0; 78 for a bad or busy listen address, a bad users file, or ``auth`` iwa without pyspnego."""
    try:
        host, port = parse_listen(listen or "127.0.0.1:0")
        options = SimOptions(host=host, port=port, scenario="static" if users_file else "demo", auth=auth)
        if control_listen:
            options.control_port = parse_listen(control_listen)[1]
            options.control = True
        users = load_users_file(users_file) if users_file else None
        simulator = Simulator(users, options)  # ConfigError: auth iwa without the optional pyspnego
    except ValueError as exc:
        print(f"cwa2mqtt simulate: {exc}", file=sys.stderr)
        return 78
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"cwa2mqtt simulate: {problem}", file=sys.stderr)
        return 78
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            simulator.start()
        except OSError as exc:
            print(f"cwa2mqtt simulate: {_bind_problem(options, exc)}", file=sys.stderr)
            return 78
        with simulator as sim:
            _print_banner(sim, options, users_file)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _print_banner(sim: Simulator, options: SimOptions, users_file: str | None) -> None:
    print(f"CWA simulator listening on {sim.url}")
    if options.auth == "iwa":
        print(f"  sign-in:  POST {sim.url}/iwa/logon.html  (NTLM; forms sign-in refused)")
    else:
        print(f"  sign-in:  POST {sim.url}/forms/logon.html")
    print(f"  command:  {sim.url}{options.command_path}")
    print(f"  data:     {sim.url}{options.data_path}")
    if users_file is None:
        print(f"  demo account: user {scenario.DEMO_USERNAME!s}  password {scenario.DEMO_PASSWORD}")
        print(f"                uri  {scenario.DEMO_URI}")
        others = [uri for uri in sim.user_uris() if uri.lower() != scenario.DEMO_URI]
        print(f"  demo users ({len(others)}, presence changing): {' '.join(others)}")
    else:
        print(f"  users from {users_file}: {len(sim.user_uris())}")
    print(f"control API: {sim.control_url}  (GET /users, /sessions, /stats; POST /faults/<name>)")
    sys.stdout.flush()


def _bind_problem(options: SimOptions, exc: OSError) -> str:
    """Which of the two addresses could not be bound, and why (a port in use, most often)."""
    addresses = [("CWA endpoint", options.port)]
    if options.control:
        addresses.append(("control API", options.control_port))
    for label, port in addresses:
        if port and not _bindable(options.host, port):
            return f"cannot listen on {options.host}:{port} ({label}): {why(exc)}"
    return f"cannot listen on {options.host}: {why(exc)}"


def _bindable(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
