"""The configuration: YAML file + ``CWA2MQTT_*`` environment, validated into frozen models.

Theory of operation. `load_settings` finds and parses the YAML itself (so syntax errors carry a
line and column), then builds `Settings` through pydantic-settings with three sources, highest
priority first: the environment (``CWA2MQTT_SECTION__KEY``), the file, and the packaging defaults
file named by ``$CWA2MQTT_DEFAULTS_FILE``. They read the mappings stashed in a context variable,
which is how a caller (or a test) can pass an explicit environment instead of ``os.environ``.
Every problem is turned into a ``key.path: message`` line — built from ``loc`` and ``msg`` only,
never from ``input``, because the input may be a password; named by the variable when a variable
set the value — and all of them, the rules across sections included, are raised at once as
`ConfigError`.

Passwords may come from ``password`` (file or env), ``password_file`` or systemd's
``$CREDENTIALS_DIRECTORY`` (``cwa_password``/``mqtt_password``), in that order of preference.
Relative paths (``password_file``, ``ca_file``) are relative to the working directory.

The modules, one job each (import from this package, not from them):

- `parsers`: small value parsers (SIP URI, ``HOST:PORT``, colour, days, ``HH:MM``, topic)
- `passwords`: where a password comes from; `context`: the inputs of the running load
- `sections`: the models of ``cwa``, ``watch[]``, ``mqtt``, ``homeassistant``, ``http``, ``log``
- `lights`: the models of ``lights[]`` and its schedule
- `settings`: `Settings`, its env/YAML sources and the cross-section validators
- `crosscheck`: the rules across fields, also applied to the raw input when validation fails
- `document`: reading and parsing the YAML file; `loader`: `load_settings`
- `errors`: pydantic errors → ``key.path: message``; `origin`: naming a problem by its source
- `advice`: warnings about a valid config; `reference`: the Markdown reference
"""

from bridge.config.document import read_document
from bridge.config.lights import PAYLOAD_PLACEHOLDERS, LightConfig, ScheduleConfig
from bridge.config.loader import (
    DEFAULT_PATHS,
    NON_SETTING_ENV,
    NON_SETTING_ENV_PREFIX,
    find_config_file,
    load_settings,
)
from bridge.config.parsers import (
    DAY_NAMES,
    normalize_sip_uri,
    parse_color,
    parse_days,
    parse_hhmm,
    parse_listen,
)
from bridge.config.reference import config_reference_markdown
from bridge.config.sections import (
    CwaConfig,
    HomeAssistantConfig,
    HttpConfig,
    LogConfig,
    MqttConfig,
    WatchEntry,
)
from bridge.config.settings import ENV_PREFIX, Settings
from bridge.logs import REDACTED
from bridge.presence import DEFAULT_PRIORITY

__all__ = [
    "DAY_NAMES",
    "DEFAULT_PATHS",
    "DEFAULT_PRIORITY",
    "ENV_PREFIX",
    "NON_SETTING_ENV",
    "NON_SETTING_ENV_PREFIX",
    "PAYLOAD_PLACEHOLDERS",
    "REDACTED",
    "CwaConfig",
    "HomeAssistantConfig",
    "HttpConfig",
    "LightConfig",
    "LogConfig",
    "MqttConfig",
    "ScheduleConfig",
    "Settings",
    "WatchEntry",
    "config_reference_markdown",
    "find_config_file",
    "load_settings",
    "normalize_sip_uri",
    "parse_color",
    "parse_days",
    "parse_hhmm",
    "parse_listen",
    "read_document",
]
