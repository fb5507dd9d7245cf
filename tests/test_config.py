"""The configuration a user writes (interface.md §3, §8) and what the bridge makes of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridge import config as config_module
from bridge.config import (
    Settings,
    config_reference_markdown,
    load_settings,
    parse_days,
)
from bridge.errors import ConfigError
from bridge.presence import Status
from tests.support.config import BASE_YAML, CWA_PASSWORD, ENV_ONLY, MQTT_PASSWORD, PASSWORD_ENV

ROOT = Path(__file__).resolve().parents[1]
MakeSettings = Callable[..., Settings]
WriteConfig = Callable[..., Path]


def problems_of(write_config: WriteConfig, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(text), env=PASSWORD_ENV if env is None else env)
    return info.value.problems


@pytest.fixture(autouse=True)
def _no_default_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A config.yaml in the real cwd or /etc must not leak into these tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config_module, "DEFAULT_PATHS", (Path("config.yaml"),))


def test_minimal_file_gives_documented_defaults(make_settings: MakeSettings) -> None:
    s = make_settings()
    assert s.cwa.url == "https://cwa.example.org"
    assert s.cwa.host == "cwa.example.org"
    assert s.cwa.password.get_secret_value() == CWA_PASSWORD
    assert s.cwa.auth == "forms"
    assert s.cwa.initial_availability is None
    assert s.cwa.note_max_length == 255
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls) == ("localhost", 1883, False)
    assert (s.mqtt.base_topic, s.mqtt.qos, s.mqtt.output) == ("cwa2mqtt", 1, "both")
    assert s.mqtt.password is None
    assert s.homeassistant.discovery is True
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8099)
    assert (s.log.level, s.log.format) == ("info", "text")
    assert s.lights == []
    assert s.color_topics is False
    assert s.priority == (
        Status.DO_NOT_DISTURB,
        Status.BUSY,
        Status.BE_RIGHT_BACK,
        Status.AWAY,
        Status.AVAILABLE,
        Status.OFFLINE,
        Status.UNKNOWN,
    )


def test_watch_entries_plain_or_objects_with_derived_ids(make_settings: MakeSettings) -> None:
    s = make_settings(
        BASE_YAML.split("watch:")[0]
        + "watch:\n  - SIP:bob@example.org\n  - sip:Carol.Nguyen@example.org\n"
        + "  - {uri: sip:o'neil+x@example.org, name: O'Neil}\n  - {uri: sip:dave@example.org, id: d-1}\n"
    )
    assert [(w.id, w.uri, w.name) for w in s.watch] == [
        ("bob", "sip:bob@example.org", None),
        ("carol_nguyen", "sip:Carol.Nguyen@example.org", None),
        ("o_neil_x", "sip:o'neil+x@example.org", "O'Neil"),
        ("d-1", "sip:dave@example.org", None),
    ]


def test_environment_overrides_the_file(make_settings: MakeSettings) -> None:
    text = BASE_YAML + "mqtt:\n  url: mqtt://file-broker:1883\n  qos: 2\nlog:\n  level: debug\n"
    env = {
        **PASSWORD_ENV,
        "CWA2MQTT_MQTT__URL": "mqtts://env-broker",
        "cwa2mqtt_log__level": "WARNING",
        "CWA2MQTT_WATCH": "sip:zed@example.org, sip:amy@example.org",
        "CWA2MQTT_HOMEASSISTANT__DISCOVERY": "false",
    }
    s = make_settings(text, env=env)
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls) == ("env-broker", 8883, True)
    assert s.mqtt.qos == 2  # the file still counts where the environment says nothing
    assert s.log.level == "warning"
    assert [w.id for w in s.watch] == ["zed", "amy"]
    assert s.homeassistant.discovery is False


def test_list_settings_take_json_from_the_environment(make_settings: MakeSettings) -> None:
    env = {
        **PASSWORD_ENV,
        "CWA2MQTT_WATCH": '[{"uri": "sip:bob@example.org", "id": "b"}]',
        "CWA2MQTT_LIGHTS": '[{"name": "door", "watch": ["b"], "preset": "tasmota", "device": "lamp"}]',
        "CWA2MQTT_PRIORITY": "busy,do_not_disturb,away,be_right_back,available,unknown,offline",
    }
    s = make_settings(env=env)
    assert [w.id for w in s.watch] == ["b"]
    assert s.lights[0].device == "lamp"
    assert s.priority[:2] == (Status.BUSY, Status.DO_NOT_DISTURB)


def test_config_from_the_environment_alone() -> None:
    s = load_settings(env=ENV_ONLY)
    assert s.cwa.uri == "sip:alice@example.org"
    assert s.watch == []


def test_lookup_uses_cwa2mqtt_config_then_cwd(write_config: WriteConfig, tmp_path: Path) -> None:
    other = write_config(BASE_YAML + "log: {level: error}\n", name="other.yaml")
    write_config(BASE_YAML + "log: {level: debug}\n")  # ./config.yaml (cwd is tmp_path)
    assert load_settings(env={**PASSWORD_ENV, "CWA2MQTT_CONFIG": str(other)}).log.level == "error"
    assert load_settings(env=PASSWORD_ENV).log.level == "debug"


def test_password_file_has_its_trailing_newline_stripped(make_settings: MakeSettings, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(CWA_PASSWORD + "\n")
    (tmp_path / "mpw").write_text(MQTT_PASSWORD + "\r\n")
    text = BASE_YAML.replace("  uri: sip:alice", f"  password_file: {tmp_path / 'pw'}\n  uri: sip:alice")
    text += f"mqtt:\n  username: bridge\n  password_file: {tmp_path / 'mpw'}\n"
    s = make_settings(text, env={})
    assert s.cwa.password.get_secret_value() == CWA_PASSWORD
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == MQTT_PASSWORD


def test_systemd_credentials_directory(make_settings: MakeSettings, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cwa_password").write_text(CWA_PASSWORD + "\n")
    (creds / "mqtt_password").write_text(MQTT_PASSWORD)
    s = make_settings(env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert s.cwa.password.get_secret_value() == CWA_PASSWORD
    assert s.mqtt.password is not None
    assert s.mqtt.password.get_secret_value() == MQTT_PASSWORD
    # An explicit password wins over the credential.
    s = make_settings(env={"CREDENTIALS_DIRECTORY": str(creds), "CWA2MQTT_CWA__PASSWORD": "explicit"})
    assert s.cwa.password.get_secret_value() == "explicit"


def test_missing_password_names_every_way_to_set_it(write_config: WriteConfig) -> None:
    assert problems_of(write_config, BASE_YAML, env={}) == [
        "cwa.password: required (set cwa.password, cwa.password_file, CWA2MQTT_CWA__PASSWORD "
        "or the credential cwa_password)"
    ]


def _cwa(extra: str) -> str:
    return BASE_YAML.replace("cwa:\n", "cwa:\n" + extra, 1)


def _with(text: str) -> str:
    return BASE_YAML + text


LIGHT = "lights:\n  - name: door\n    watch: [bob]\n    preset: wled\n    device: door\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            BASE_YAML.replace("uri: sip:alice", "uri: alice"),
            "cwa.uri: not a SIP URI (expected sip:user@domain)",
        ),
        (_with("  - bob@example.org\n"), "watch[2].uri: not a SIP URI (expected sip:user@domain)"),
        (
            _with("  - sip:bob@other.org\n"),
            "watch[2].id: id 'bob' of sip:bob@other.org clashes with sip:bob@example.org (watch[0])",
        ),
        (
            _with("  - sip:BOB@example.org\n"),
            "watch[2].uri: sip:BOB@example.org is already watched (watch[0])",
        ),
        (
            _with("  - {uri: sip:x@example.org, id: self}\n"),
            "watch[2].id: 'self' is reserved (set another id)",
        ),
        (_with("  - sip:bridge@example.org\n"), "watch[2].id: 'bridge' is reserved (set another id)"),
        (
            _with("  - {uri: sip:x@example.org, id: Bad.Id}\n"),
            "watch[2].id: 'Bad.Id' is not a valid id (use only a-z, 0-9, _ and -)",
        ),
        (_with("mqtt: {base_topic: cwa/#}\n"), "mqtt.base_topic: must not contain +, # or NUL"),
        (_with("mqtt: {base_topic: /cwa}\n"), "mqtt.base_topic: must not start or end with /"),
        (_with("mqtt: {base_topic: ''}\n"), "mqtt.base_topic: must not be empty"),
        (
            _with("mqtt: {url: 'http://broker'}\n"),
            "mqtt.url: must be mqtt://host[:port] or mqtts://host[:port]",
        ),
        (_with("mqtt: {url: 'mqtt://broker:99999'}\n"), "mqtt.url: invalid port (1-65535)"),
        (
            _with("mqtt: {url: 'mqtt://u:p@broker'}\n"),
            "mqtt.url: must not contain credentials (use mqtt.username and mqtt.password)",
        ),
        (_with("mqtt: {qos: 3}\n"), "mqtt.qos: must be less than or equal to 2"),
        (
            _with("mqtt: {output: attributes}\n"),
            "homeassistant.discovery: Home Assistant reads the JSON state "
            "topic: with discovery on, mqtt.output must be json or both, not attributes",
        ),
        (_with("mqtt: {output: xml}\n"), "mqtt.output: must be 'json', 'attributes' or 'both'"),
        (
            _cwa("  url: ftp://x\n").replace("  url: https://cwa.example.org\n", ""),
            "cwa.url: must be an http:// or https:// URL with a host",
        ),
        (_cwa("  auth: kerberos\n"), "cwa.auth: must be 'forms' or 'iwa'"),
        (_cwa("  note_max_length: 256\n"), "cwa.note_max_length: must be less than or equal to 255"),
        (_cwa("  timeout_s: 0\n"), "cwa.timeout_s: must be greater than 0"),
        (_cwa("  republish_s: -1\n"), "cwa.republish_s: must be greater than 0"),
        (
            _cwa("  initial_availability: 100\n"),
            "cwa.initial_availability: must be greater than or equal to 3000",
        ),
        (_cwa("  verify_tls: perhaps\n"), "cwa.verify_tls: must be true or false"),
        (_cwa("  ca_file: /nonexistent/ca.pem\n"), "cwa.ca_file: no such file: /nonexistent/ca.pem"),
        (_cwa("  command_path: cwa/x\n"), "cwa.command_path: must start with /"),
        (_cwa("  passwrd: x\n"), "cwa.passwrd: unknown key (did you mean 'password'?)"),
        (_with("mqtt_url: mqtt://x\n"), "mqtt_url: unknown key (did you mean 'mqtt'?)"),
        (_with("mqtt: {password: 1234}\n"), "mqtt.password: must be a string (quote it in YAML)"),
        (_with("log: {level: verbose}\n"), "log.level: must be 'debug', 'info', 'warning' or 'error'"),
        (_with("log: {format: xml}\n"), "log.format: must be 'text' or 'json'"),
        (_with("http: {listen: localhost}\n"), "http.listen: expected HOST:PORT, e.g. 127.0.0.1:8099"),
        (_with("http: {listen: 'localhost:http'}\n"), "http.listen: port must be a number from 0 to 65535"),
        (
            _with("priority: [busy, busy]\n"),
            "priority: must list all seven statuses once each (missing: "
            "available, do_not_disturb, be_right_back, away, offline, unknown)",
        ),
        (_with("color_topics: sometimes\n"), "color_topics: must be true or false"),
    ],
)
def test_each_problem_is_reported_with_its_key_path(
    write_config: WriteConfig, text: str, expected: str
) -> None:
    assert problems_of(write_config, text) == [expected]


@pytest.mark.parametrize(
    ("light", "expected"),
    [
        ({"watch": "[bob, zed]"}, ["lights[0].watch[1]: unknown id 'zed' (known: bob, carol, self)"]),
        ({"name": "Door"}, ["lights[0].name: may contain only a-z, 0-9, _ and -"]),
        (
            {"preset": "hue"},
            ["lights[0].preset: must be 'wled', 'tasmota', 'esphome', 'zigbee2mqtt', 'http' or 'raw'"],
        ),
        ({"device": None}, ["lights[0].device: required for preset wled"]),
        (
            {"preset": "raw", "device": None},
            ["lights[0].topic: required for preset raw", "lights[0].payload: required for preset raw"],
        ),
        ({"topic": "x/y"}, ["lights[0].topic: only for preset raw, not wled"]),
        ({"colors": "{busy: red}"}, ["lights[0].colors.busy: not a colour (expected #RRGGBB)"]),
        (
            {"colors": "{bsy: '#FF0000'}"},
            [
                "lights[0].colors.bsy: not a status (one of: available, busy, "
                "do_not_disturb, be_right_back, away, offline, unknown)"
            ],
        ),
        ({"activity_colors": "{'--': '#FF0000'}"}, ["lights[0].activity_colors.--: not an activity token"]),
        (
            {"schedule": "{days: mon-fry}"},
            ["lights[0].schedule.days: unknown day 'fry' (use mon, tue, wed, thu, fri, sat, sun or daily)"],
        ),
        ({"schedule": "{from: '8 am'}"}, ['lights[0].schedule.from: not a time (expected "HH:MM", quoted)']),
        ({"schedule": "{to: '24:00'}"}, ['lights[0].schedule.to: not a time (expected "HH:MM", quoted)']),
        (
            {"schedule": "{timezone: Mars/Olympus}"},
            [
                "lights[0].schedule.timezone: unknown time zone "
                "'Mars/Olympus' (an IANA name like Europe/Berlin)"
            ],
        ),
        (
            {"schedule": "{weekdays: mon}"},
            ["lights[0].schedule.weekdays: unknown key (did you mean 'days'?)"],
        ),
        ({"retain": "maybe"}, ["lights[0].retain: must be true or false"]),
    ],
)
def test_light_problems(write_config: WriteConfig, light: dict[str, str | None], expected: list[str]) -> None:
    fields = {"name": "door", "watch": "[bob]", "preset": "wled", "device": "door", **light}
    text = (
        BASE_YAML + "lights:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in fields.items() if v is not None)
    )
    assert problems_of(write_config, text + "\n") == expected


def test_light_names_must_be_unique(write_config: WriteConfig) -> None:
    assert problems_of(write_config, BASE_YAML + LIGHT + LIGHT.removeprefix("lights:\n")) == [
        "lights[1].name: 'door' is already used by lights[0]"
    ]


def test_every_problem_is_reported_at_once(write_config: WriteConfig) -> None:
    text = (
        "cwa:\n  url: https://cwa.example.org\n  uri: nope\n"
        "watch: [sip:bob@example.org, notsip]\nmqtt: {qos: 9, base_topic: 'a/+'}\nlog: {level: loud}\n"
    )
    assert problems_of(write_config, text, env={}) == [
        "cwa.username: required",
        "cwa.password: required (set cwa.password, cwa.password_file, CWA2MQTT_CWA__PASSWORD "
        "or the credential cwa_password)",
        "cwa.uri: not a SIP URI (expected sip:user@domain)",
        "watch[1].uri: not a SIP URI (expected sip:user@domain)",
        "mqtt.base_topic: must not contain +, # or NUL",
        "mqtt.qos: must be less than or equal to 2",
        "log.level: must be 'debug', 'info', 'warning' or 'error'",
    ]


def test_empty_file_means_everything_is_required(write_config: WriteConfig) -> None:
    assert problems_of(write_config, "", env={})[:3] == [
        "cwa.url: required",
        "cwa.username: required",
        "cwa.password: required (set cwa.password, cwa.password_file, CWA2MQTT_CWA__PASSWORD "
        "or the credential cwa_password)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cwa:\n  url: [\n",
            "config.yaml:3:1: YAML syntax error: expected the node content, but found '<stream end>'",
        ),
        ("cwa: {url: x\n", "config.yaml:2:1: YAML syntax error: expected ',' or '}', but got '<stream end>'"),
        ("- a\n- b\n", "config.yaml: the top level must be a mapping of keys, not a list"),
        ("just text\n", "config.yaml: the top level must be a mapping of keys, not a string"),
        ("log: {}\nlog: {}\n", "config.yaml:2:1: YAML syntax error: duplicate key 'log'"),
        (
            "cwa: \x00x\n",
            "config.yaml: YAML error: unacceptable character #x0000: special characters are not allowed in "
            '"<unicode string>", position 5',
        ),
        (
            "\t cwa: x\n",
            "config.yaml:1:1: YAML syntax error: found character '\\t' that cannot start any token",
        ),
    ],
)
def test_file_level_problems(write_config: WriteConfig, text: str, expected: str) -> None:
    problems = problems_of(write_config, text)
    assert [p.split("/")[-1] for p in problems] == [expected]


def test_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "missing.yaml", env=PASSWORD_ENV)
    assert info.value.problems == [f"{tmp_path / 'missing.yaml'}: config file not found"]
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, env=PASSWORD_ENV)
    assert info.value.problems == [f"{tmp_path}: cannot read the config file (Is a directory)"]


def test_unknown_environment_variable_is_an_error(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(
            env={
                **PASSWORD_ENV,
                "CWA2MQTT_MQTT_URL": "mqtt://x",
                "CWA2MQTT_MQTT__QOS": "7",
                "CWA2MQTT_MQTT__URLL": "mqtt://x",
                "CWA2MQTT_TEST_BROKER": "amqtt",  # test-suite knobs are not settings
                "CWA2MQTT_CONFIG": "ignored",  # nor are the config path and the packaging defaults
                "CWA2MQTT_DEFAULTS_FILE": "",
            }
        )
    # Each problem is named by the variable the user set, not as a key of some file.
    assert info.value.problems == [
        "CWA2MQTT_MQTT_URL: unknown environment variable (did you mean CWA2MQTT_MQTT__URL?)",
        "CWA2MQTT_MQTT__QOS: must be less than or equal to 2",
        "CWA2MQTT_MQTT__URLL: unknown environment variable (did you mean CWA2MQTT_MQTT__URL?)",
    ]


def test_a_variable_holding_a_list_is_named_with_the_entry(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(env={**PASSWORD_ENV, "CWA2MQTT_WATCH": "sip:bob@example.org,bob"})
    assert info.value.problems == ["CWA2MQTT_WATCH: watch[1].uri: not a SIP URI (expected sip:user@domain)"]


def test_bad_json_in_a_list_variable(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(env={**PASSWORD_ENV, "CWA2MQTT_LIGHTS": "[{"})
    assert info.value.problems == [
        "CWA2MQTT_LIGHTS: not valid JSON (Expecting property name enclosed in double quotes at column 3)"
    ]


def test_password_file_problems(make_settings: MakeSettings, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    for path, message in [(tmp_path / "nope", "No such file or directory"), (tmp_path / "empty", "is empty")]:
        text = BASE_YAML.replace("  uri: sip:alice", f"  password_file: {path}\n  uri: sip:alice")
        with pytest.raises(ConfigError) as info:
            make_settings(text, env={})
        [problem] = info.value.problems
        assert problem.startswith("cwa.password_file: ")
        assert message in problem


def test_lights_are_parsed_into_forms_a_light_model_can_use(make_settings: MakeSettings) -> None:
    text = BASE_YAML + (
        "lights:\n"
        "  - name: office-door\n    watch: [carol, self]\n    preset: wled\n    device: door\n"
        "    colors: {busy: '#ff0000'}\n"
        "    activity_colors: {On-The-Phone: '#ff00ff', InAMeeting: '#00ff00'}\n"
        "    schedule: {days: mon-fri, from: '08:00', to: 18:30, timezone: Europe/Berlin}\n    retain: true\n"
        "  - name: desk\n    watch: bob\n    preset: raw\n    topic: desk/set\n    payload: '{hex}'\n"
        "color_topics: true\n"
        "priority: [busy, do_not_disturb, be_right_back, away, available, offline, unknown]\n"
    )
    s = make_settings(text)
    door, desk = s.lights
    assert door.watch == ("carol", "self")
    assert door.colors == {Status.BUSY: "#FF0000"}
    assert door.activity_colors == {"on_the_phone": "#FF00FF", "in_a_meeting": "#00FF00"}
    assert door.schedule is not None
    assert door.schedule.days == frozenset({0, 1, 2, 3, 4})
    assert (door.schedule.start, door.schedule.end) == (time(8, 0), time(18, 30))  # unquoted 18:30 works
    assert door.schedule.timezone == ZoneInfo("Europe/Berlin")
    assert door.retain is True
    assert desk.watch == ("bob",)
    assert (desk.topic, desk.payload, desk.off_topic, desk.retain, desk.schedule) == (
        "desk/set",
        "{hex}",
        None,
        False,
        None,
    )
    assert s.color_topics is True
    assert s.priority[0] == Status.BUSY


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("daily", {0, 1, 2, 3, 4, 5, 6}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon-sun", {0, 1, 2, 3, 4, 5, 6}),
        ("sat,sun", {5, 6}),
        (["sat", "Sun"], {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("Monday, wed", {0, 2}),
    ],
)
def test_schedule_days(days: str | list[str], expected: set[int]) -> None:
    assert parse_days(days) == frozenset(expected)


def test_unknown_light_ids_are_only_warned_about_with_watch_contacts(make_settings: MakeSettings) -> None:
    s = make_settings(BASE_YAML + "watch_contacts: true\n" + LIGHT.replace("[bob]", "[bob, zed]"))
    assert s.lights[0].watch == ("bob", "zed")
    assert s.config_warnings() == [
        "lights[0].watch[1]: id 'zed' is not configured; it must be a contact (watch_contacts) "
        "or the light stays off"
    ]


def test_http_listen_forms(make_settings: MakeSettings) -> None:
    assert make_settings(BASE_YAML + "http: {listen: ''}\n").http.port is None
    s = make_settings(BASE_YAML + "http: {listen: '[::1]:9000'}\n")
    assert (s.http.host, s.http.port) == ("::1", 9000)


def test_secrets_never_appear_in_reprs_dumps_or_errors(
    make_settings: MakeSettings, write_config: WriteConfig
) -> None:
    env = {**PASSWORD_ENV, "CWA2MQTT_MQTT__PASSWORD": MQTT_PASSWORD}
    s = make_settings(env=env)
    for text in (repr(s), str(s), s.redacted_yaml(), repr(s.cwa), str(s.model_dump())):
        assert CWA_PASSWORD not in text
        assert MQTT_PASSWORD not in text
    assert "password: '**********'" in s.redacted_yaml()
    # The password where it does not belong: the error names the place, never the value.
    bad = BASE_YAML.replace("cwa:\n", f"cwa:\n  passw: {CWA_PASSWORD}\n  timeout_s: {CWA_PASSWORD}\n")
    bad += f"mqtt: {{url: 'mqtt://u:{MQTT_PASSWORD}@h', password: ['{MQTT_PASSWORD}']}}\n"
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(bad), env=PASSWORD_ENV)
    assert len(info.value.problems) == 4
    assert CWA_PASSWORD not in str(info.value)
    assert MQTT_PASSWORD not in str(info.value)


def test_redacted_yaml_is_a_loadable_config(make_settings: MakeSettings, write_config: WriteConfig) -> None:
    s = make_settings(BASE_YAML + LIGHT + "    schedule: {days: 'sat,sun', from: '22:00', to: '06:00'}\n")
    again = load_settings(write_config(s.redacted_yaml(), name="again.yaml"), env={})
    assert again.cwa.password.get_secret_value() == "**********"
    assert again.model_dump(exclude={"cwa": {"password"}}) == s.model_dump(exclude={"cwa": {"password"}})


def test_example_config_is_valid() -> None:
    s = load_settings(ROOT / "config.example.yaml", env=PASSWORD_ENV)
    assert [w.id for w in s.watch] == ["bob", "carol"]
    assert [light.name for light in s.lights] == ["office-door", "hall-bulb", "busylight", "desk"]


def test_committed_reference_matches_the_models() -> None:
    committed = (ROOT / "docs" / "config-reference.md").read_text(encoding="utf-8")
    assert committed == config_reference_markdown(), (
        "docs/config-reference.md is stale: python -m bridge.config --reference > docs/config-reference.md"
    )


def test_reference_documents_every_key() -> None:
    reference = config_reference_markdown()
    for key in (
        "`note_max_length`",
        "`base_topic`",
        "`status_topic`",
        "`activity_colors`",
        "`from`",
        "`priority`",
    ):
        assert key in reference
    assert "CWA2MQTT_MQTT__URL" in reference


def test_the_own_uri_under_watch_and_ids_ha_would_merge_are_refused(write_config: WriteConfig) -> None:
    text = BASE_YAML.replace(
        "watch:\n",
        "watch:\n  - sip:alice@example.org\n  - {uri: sip:x@example.org, id: a-b}\n"
        "  - {uri: sip:y@example.org, id: a_b}\n",
        1,
    )
    problems = problems_of(write_config, text)
    assert any("is the signed-in account (cwa.uri): it is bridged as self" in p for p in problems), problems
    assert any(
        "id 'a_b' of sip:y@example.org clashes with sip:x@example.org" in p and "'a-b'" in p for p in problems
    ), problems
