"""Warnings about a valid configuration, given at start and by ``check-config``.

Besides `Settings.config_warnings` (unknown light ids under watch_contacts, TLS checks off):
a secret that others on the machine can read (a password or token file, or a config file holding
a password, readable by group or others), and forms sign-in over plain ``http://`` to a host
that is not this machine (the password would cross the network in clear).
"""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bridge.config.document import read_document
from bridge.config.settings import Settings
from bridge.errors import ConfigError


@dataclass(frozen=True)
class Advice:
    """One warning: ``event`` (the log line's first word) and ``detail`` (``key=value ...``)."""

    event: str
    detail: str

    @property
    def line(self) -> str:
        return f"{self.event} {self.detail}"


def startup_advice(settings: Settings, config_file: Path | None) -> list[Advice]:
    """Every warning for `settings`, loaded from `config_file` (None: from the environment)."""
    advice = [Advice("config.warning", text) for text in settings.config_warnings()]
    token_file = getattr(settings.http, "token_file", None)  # the http section may not have one
    secret_files = [p for p in (settings.cwa.password_file, settings.mqtt.password_file, token_file) if p]
    advice += [_permissions(path) for path in _unique(secret_files) if _readable_by_others(path)]
    # Parsed again only when others can read it: a big watch list takes a while to parse.
    if config_file is not None and _readable_by_others(config_file) and _holds_secret(config_file):
        advice.append(_permissions(config_file))
    url = urlsplit(settings.cwa.url)
    if settings.cwa.auth == "forms" and url.scheme.lower() == "http" and not _loopback(url.hostname or ""):
        advice.append(
            Advice(
                "config.plain_http_sign_in",
                f'url={settings.cwa.url} reason="forms sign-in sends cwa.password in clear over http://; '
                'use https://"',
            )
        )
    return advice


def _permissions(path: Path) -> Advice:
    mode = stat.S_IMODE(path.stat().st_mode)
    return Advice(
        "config.insecure_permissions",
        f'path={path} mode={mode:04o} reason="holds a secret and is readable by group or others; '
        f'chmod 600 {path}"',
    )


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(stat.S_IMODE(path.stat().st_mode) & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False  # an unreadable file is reported by the config itself


def _holds_secret(config_file: Path) -> bool:
    try:
        document = read_document(config_file)
    except ConfigError:
        return False
    sections = (document.get("cwa"), document.get("mqtt"), document.get("http"))
    return any(isinstance(s, dict) and (s.get("password") or s.get("token")) for s in sections)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unique(paths: Iterable[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))
