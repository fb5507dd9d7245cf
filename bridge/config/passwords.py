"""Where a password comes from: ``password`` (file or env), ``password_file`` or systemd's
``$CREDENTIALS_DIRECTORY``, in that order of preference. Relative paths are relative to the
working directory. Messages name the file, never its content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bridge.config.context import current
from bridge.config.errors import why

# Stands in for a password whose password_file cannot be read: that file is reported by its own
# validator, and the placeholder keeps the password from also being reported as missing.
UNRESOLVED = SecretStr("")


def resolve_password(data: Any, credential: str, key: str = "password") -> Any:
    """Fill ``key`` (``password``, ``token``) from ``<key>_file`` or the systemd credential when it
    was not given."""
    if not isinstance(data, dict) or data.get(key) is not None:
        return data
    data = dict(data)
    file = data.get(f"{key}_file")
    if file is not None and file != "":
        data[key] = _read_secret(Path(str(file))) or UNRESOLVED
        return data
    cred_dir = current().env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        secret = _read_secret(Path(cred_dir) / credential)
        if secret is not None:
            data[key] = secret
    return data


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n") or None
    except (OSError, UnicodeDecodeError):
        return None


def check_password_file(value: Path | None) -> Path | None:
    if value is None:
        return None
    try:
        text = value.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {value}: {why(exc)}") from None
    if not text.rstrip("\r\n"):
        raise ValueError(f"{value} is empty")
    return value


def check_secret(value: Any) -> Any:
    if value is not UNRESOLVED and (
        value == "" or (isinstance(value, SecretStr) and not value.get_secret_value())
    ):
        raise ValueError("must not be empty")
    return value
