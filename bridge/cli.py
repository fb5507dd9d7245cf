"""The ``cwa2mqtt`` command line: run, check-config, demo, simulate, health.

Exit codes: 0 ok, 1 unexpected error (or unhealthy), 2 usage error, 77 credentials rejected
(from ``bridge.app.run``), 78 bad configuration. No command prints a traceback: an unexpected
exception becomes one log line with its message and type (registered secrets are redacted by the
log handler; the project's own exceptions never carry one).
The heavy parts (``bridge.app``, ``bridge.demo``, ``bridge.simulator``) are imported only by the
command that needs them, so ``check-config`` and ``health`` start fast and work on their own.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bridge import __version__
from bridge.errors import EXIT_CONFIG, EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, BridgeError, ConfigError

if TYPE_CHECKING:
    from bridge.config import Settings
    from bridge.config.advice import Advice

log = logging.getLogger("bridge.cli")

EXIT_FAILURE = EXIT_UNEXPECTED  # also `health`: not healthy
DEFAULT_HEALTH_URL = "http://127.0.0.1:8099"
HEALTH_TIMEOUT_S = 5.0


def _listen(text: str) -> str:
    """argparse type for HOST:PORT: checked here, passed on as given."""
    from bridge.config import parse_listen  # noqa: PLC0415  # keep `--version` free of pydantic

    try:
        parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    return text


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="cwa2mqtt",
        description="Bridge Communicator Web Access (OCS 2007) presence to MQTT and Home Assistant.",
        epilog="Try it without any server: cwa2mqtt demo",
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"cwa2mqtt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    config_help = "config file (default: $CWA2MQTT_CONFIG, ./config.yaml, /etc/cwa2mqtt/config.yaml)"

    run = sub.add_parser(
        "run",
        help="run the bridge",
        description="Run the bridge until SIGTERM/SIGINT.\n\n"
        "Exit codes: 0 clean stop, 77 credentials rejected by CWA, 78 bad config, 1 unexpected error.\n\n"
        "example:\n  cwa2mqtt run -c /etc/cwa2mqtt/config.yaml",
        formatter_class=fmt,
    )
    run.add_argument("-c", "--config", metavar="FILE", help=config_help)

    check = sub.add_parser(
        "check-config",
        help="validate the configuration and print it with secrets redacted",
        description="Validate the configuration (file and CWA2MQTT_* environment) and print the effective\n"
        "config with every secret redacted. Exit 0 when valid, 78 with every problem listed otherwise.\n\n"
        "example:\n  CWA2MQTT_CWA__PASSWORD=... cwa2mqtt check-config -c config.yaml",
        formatter_class=fmt,
    )
    check.add_argument("-c", "--config", metavar="FILE", help=config_help)

    demo = sub.add_parser(
        "demo",
        help="try the bridge against a built-in CWA simulator and MQTT broker",
        description="Start the built-in CWA simulator (demo users whose presence changes every few\n"
        "seconds), an embedded MQTT broker (or use --mqtt-url) and the bridge, and show a live view.\n"
        "No config file needed.\n\n"
        "examples:\n  cwa2mqtt demo\n"
        "  cwa2mqtt demo --mqtt-url mqtt://localhost:1883 --http-listen 127.0.0.1:8099",
        formatter_class=fmt,
    )
    demo.add_argument("--mqtt-url", metavar="URL", help="use this broker instead of the embedded one")
    demo.add_argument(
        "--http-listen", metavar="HOST:PORT", type=_listen, help="serve the presence board here"
    )
    demo.add_argument(
        "--no-live",
        action="store_true",
        help="print each change as a line instead of redrawing the live view",
    )

    simulate = sub.add_parser(
        "simulate",
        help="run the CWA simulator alone",
        description="Serve a simulated CWA server, for trying clients and for tests. Without --users it\n"
        "serves the demo scenario and prints the demo account's credentials.\n\n"
        "example:\n  cwa2mqtt simulate --listen 127.0.0.1:8080 --users users.yaml",
        formatter_class=fmt,
    )
    simulate.add_argument("--listen", metavar="HOST:PORT", type=_listen, help="address of the CWA endpoint")
    simulate.add_argument(
        "--users", metavar="FILE", help="YAML list of users (uri, username, password, name, ...)"
    )
    simulate.add_argument("--control", metavar="HOST:PORT", type=_listen, help="address of the control API")
    simulate.add_argument(
        "--auth",
        choices=("forms", "iwa"),
        help="sign-in scheme: forms (default) or iwa (NTLM at /iwa/logon.html; needs pyspnego)",
    )

    health = sub.add_parser(
        "health",
        help="probe a running bridge's health endpoint",
        description="GET <url>/healthz of a running bridge. Exit 0 when healthy (HTTP 200), 1 otherwise,\n"
        "with a one-line reason. Meant for Docker HEALTHCHECK.\n\n"
        f"example:\n  cwa2mqtt health --url {DEFAULT_HEALTH_URL}",
        formatter_class=fmt,
    )
    health.add_argument(
        "--url", default=DEFAULT_HEALTH_URL, help=f"bridge base URL (default {DEFAULT_HEALTH_URL})"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cwa2mqtt`` and ``python -m bridge``; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: argparse has printed already
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "check-config": _cmd_check_config,
        "demo": _cmd_demo,
        "simulate": _cmd_simulate,
        "health": _cmd_health,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C is the normal way to stop an interactive command
    except Exception as exc:
        _ensure_logging()
        # What failed and why, in one line. Not log.exception: the traceback is for debug only.
        # The handler redacts every registered secret (passwords, tickets) from the reason.
        event = "cli.failed" if isinstance(exc, BridgeError) else "cli.crashed"  # foreseen or not
        log.error("%s command=%s reason=%s type=%s", event, args.command, reason(exc), type(exc).__name__)
        log.debug("cli.crashed.traceback", exc_info=True)
        return EXIT_FAILURE


def reason(exc: BaseException) -> str:
    """An exception's message as one quoted log value; its cause's when it has none of its own."""
    seen: BaseException | None = exc
    text = ""
    while seen is not None and not text:
        text = " ".join(str(seen).split())
        seen = seen.__cause__
    return json.dumps(text or "no detail given", ensure_ascii=False)


def _ensure_logging() -> None:
    """Commands other than ``run`` log warnings and errors as text to stderr."""
    from bridge.logs import _BridgeHandler, setup_logging  # noqa: PLC0415

    if not any(isinstance(h, _BridgeHandler) for h in logging.getLogger().handlers):
        setup_logging("warning", "text")


def _print_problems(error: ConfigError) -> None:
    count = len(error.problems)
    print(f"cwa2mqtt: invalid configuration ({count} problem{'s' if count != 1 else ''}):", file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from bridge.config import load_settings  # noqa: PLC0415

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    iwa_ok = _iwa_available()
    if settings.cwa.auth == "iwa" and not iwa_ok:
        from bridge.cwa.iwa import IWA_MISSING  # noqa: PLC0415

        _print_problems(ConfigError([IWA_MISSING]))
        return EXIT_CONFIG
    for advice in _advice(settings, args.config):
        text = advice.detail if advice.event == "config.warning" else advice.line
        print(f"cwa2mqtt: warning: {text}", file=sys.stderr)
    for line in _auth_explanation(settings.cwa.auth, iwa_ok):
        print(f"cwa2mqtt: {line}", file=sys.stderr)
    sys.stdout.write(settings.redacted_yaml())
    return EXIT_OK


def _advice(settings: Settings, config: str | None) -> list[Advice]:
    from bridge.config import find_config_file  # noqa: PLC0415
    from bridge.config.advice import startup_advice  # noqa: PLC0415

    return startup_advice(settings, find_config_file(config, os.environ))


def _iwa_available() -> bool:
    from bridge.cwa.iwa import iwa_available  # noqa: PLC0415  # httpx: only when checking

    return iwa_available()


def _auth_explanation(configured: str, iwa_ok: bool) -> list[str]:
    """What each ``cwa.auth`` mode needs (docs/protocol.md §2.2), and whether iwa works here."""
    marks = {mode: " (configured)" if mode == configured else "" for mode in ("forms", "iwa")}
    installed = "installed" if iwa_ok else "NOT installed"
    return [
        f"auth: forms{marks['forms']}: cwa.username and cwa.password are sent in the XML body "
        "of POST /forms/logon.html",
        f"auth: iwa{marks['iwa']}: Integrated Windows Authentication, NTLM over HTTP at /iwa/logon.html "
        "(username as DOMAIN\\user or user@domain; the password is not sent, only proven); needs the "
        f"optional pyspnego (pip install 'cwa2mqtt[iwa]'): {installed} in this installation",
    ]


def _cmd_run(args: argparse.Namespace) -> int:
    from bridge.config import load_settings  # noqa: PLC0415
    from bridge.logs import register_secret, setup_logging  # noqa: PLC0415

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    register_secret(settings.cwa.password.get_secret_value())
    if settings.mqtt.password is not None:
        register_secret(settings.mqtt.password.get_secret_value())
    if settings.http.token is not None:
        register_secret(settings.http.token.get_secret_value())
    setup_logging(settings.log.level, settings.log.format, changes=settings.log.changes)
    for advice in _advice(settings, args.config):
        log.warning("%s", advice.line)
    app = importlib.import_module("bridge.app")  # heavy: loaded only when the bridge really runs
    return int(app.run(settings))


def _cmd_demo(args: argparse.Namespace) -> int:
    _ensure_logging()
    demo = importlib.import_module("bridge.demo")  # the lead's module, loaded only for this command
    return int(demo.main(args))


def _cmd_simulate(args: argparse.Namespace) -> int:
    _ensure_logging()
    simulator = importlib.import_module("bridge.simulator")
    extra = {"auth": args.auth} if args.auth else {}  # forms: the simulator's default
    return int(simulator.cli_main(args.listen, args.users, args.control, **extra))


def _cmd_health(args: argparse.Namespace) -> int:
    import httpx  # noqa: PLC0415

    url = args.url.rstrip("/") + "/healthz"
    try:
        response = httpx.get(url, timeout=HEALTH_TIMEOUT_S)
    except httpx.HTTPError as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        print(f"unhealthy: {url} unreachable ({detail})", file=sys.stderr)
        return EXIT_FAILURE
    body = " ".join(response.text.split())[:200]
    if response.status_code == 200:
        print(f"healthy: {body}")
        return EXIT_OK
    print(f"unhealthy: HTTP {response.status_code} {body}".rstrip(), file=sys.stderr)
    return EXIT_FAILURE
