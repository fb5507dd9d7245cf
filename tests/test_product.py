"""The real ``cwa2mqtt`` program end to end (issue 6): ``run`` with a config file and from the
environment alone, exit codes 77 and 78, the clean stop of interface.md §7.8, ``demo``, and the
HTTP endpoint of §6 (``/healthz``, ``/metrics``, the board -- in headless Chromium when Debian's
``/usr/bin/chromium`` is installed, else fetched and parsed).

Every test gathers everything a user or a log pipeline could see -- process output at log level
debug, ``check-config`` output, every HTTP answer, every MQTT message on ``#`` -- and checks that
no password is in any of it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.cli import main
from bridge.simulator import DEMO_PASSWORD, Simulator
from tests.support.bridge import (
    ALICE,
    BOB,
    CAROL,
    PASSWORD,
    USERS,
    BridgeProcess,
    config_dict,
    write_config,
)
from tests.support.config import BASE_YAML, CWA_PASSWORD
from tests.support.http_endpoint import fetch
from tests.support.mqtt import Broker, MqttProbe, Received
from tests.support.outputs import Seen, wait_until

pytestmark = pytest.mark.integration

MQTT_USER = "bridge"
MQTT_PASSWORD = "Mq7-broker-s3cret?"
WRONG_PASSWORD = "Wr0ng-pa55-Xy9!"
HOSTILE_NOTE = "<script>alert(1)</script>"
CHROMIUM = Path("/usr/bin/chromium")
STOP_BUDGET_S = 5.0  # interface.md §7.8: offline, terminateSession, disconnect, exit 0 within 5 s


# -- helpers --------------------------------------------------------------------------------------


def presence_is(raw: bytes, sim: Simulator, uri: str) -> bool:
    seen, truth = json.loads(raw), sim.truth(uri)
    return bool(seen["status"] == truth.status.value and seen["note"] == truth.note)


def stop_and_wait(process: BridgeProcess, sig: signal.Signals) -> tuple[int, float]:
    """Send ``sig``; the exit code and how long the program took to exit (at most the budget)."""
    started = time.monotonic()
    process.signal(sig)
    try:
        code = process.wait(STOP_BUDGET_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within {STOP_BUDGET_S} s of {sig.name}:\n{process.output()[-3000:]}")
    return code, time.monotonic() - started


def assert_clean_output(process: BridgeProcess) -> str:
    out = process.output()
    assert "Traceback" not in out, out[-3000:]
    return out


def metric_values(text: str) -> dict[str, float]:
    """Sample name (with labels) → value; raises if the text is not Prometheus exposition."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


class _Tiles(HTMLParser):
    """The board page's skeleton: its title, element ids and script tags."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.scripts: list[dict[str, str | None]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag == "script":
            self.scripts.append(found)
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def check_http(url: str, seen: Seen, sim: Simulator) -> None:
    """§6 on a healthy bridge: /healthz 200, /metrics parses, the board and its data load."""
    health = seen.add_answer("/healthz", fetch(url + "/healthz"))
    assert health.status == 200, health.text
    body = json.loads(health.body)
    assert (body["mqtt"], body["cwa"], body["status"]) == ("connected", "online", "ok")

    def gauges_up() -> bool:  # the bridge refreshes its gauges about once a second
        values = metric_values(fetch(url + "/metrics").text)
        return values["cwa2mqtt_cwa_online"] == 1 and values["cwa2mqtt_mqtt_connected"] == 1

    wait_until(gauges_up, 10, "the connection gauges at 1")
    metrics = seen.add_answer("/metrics", fetch(url + "/metrics"))
    assert metrics.status == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    values = metric_values(metrics.text)
    for name in (
        "cwa2mqtt_events_received_total{kind=user_presence}",
        "cwa2mqtt_command_results_total{op=self/set,status=ok}",
        "cwa2mqtt_cwa_errors_total{kind=session_gone}",
        "cwa2mqtt_session_restarts_total",
        "cwa2mqtt_mqtt_reconnects_total",
        "cwa2mqtt_poll_latency_seconds_count",
    ):
        assert name in values, sorted(values)
    assert values["cwa2mqtt_presence_published_total{kind=presence}"] >= 3  # bob, carol, self
    assert values["cwa2mqtt_events_received_total{kind=user_presence}"] >= 1
    assert values["cwa2mqtt_command_results_total{op=self/set,status=ok}"] >= 1  # the status command

    page = seen.add_answer("/", fetch(url + "/"))
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    parsed = _Tiles()
    parsed.feed(page.text)
    assert {"board", "cwa", "mqtt", "message"} <= parsed.ids
    assert parsed.title.strip()
    assert "{{" not in parsed.title
    assert parsed.scripts == [{}]  # one inline script, nothing fetched from elsewhere
    data = seen.add_answer("/api/presence", fetch(url + "/api/presence"))
    users = {u["id"]: u for u in json.loads(data.body)["users"]}
    assert users["bob"]["name"] == BOB.name
    assert users["bob"]["status"] == sim.truth(BOB.uri).status.value
    assert users["carol"]["name"] == CAROL.name


@pytest.fixture
def sim(make_simulator: Callable[..., Simulator]) -> Simulator:
    return make_simulator(users=list(USERS), poll_wait_ms=50)


@pytest.fixture
def secure_broker(make_broker: Callable[..., Broker], tmp_path: Path) -> Broker:
    """A mosquitto that admits only ``MQTT_USER`` with ``MQTT_PASSWORD``."""
    passwd = tmp_path / "mosquitto.passwd"
    tool = "/usr/bin/mosquitto_passwd"
    if not os.access(tool, os.X_OK):
        pytest.skip("mosquitto_passwd is not installed")
    subprocess.run([tool, "-b", "-c", str(passwd), MQTT_USER, MQTT_PASSWORD], check=True, timeout=30)
    return make_broker(password_file=str(passwd))


@pytest.fixture
def seen() -> Iterator[Seen]:
    collected = Seen()
    yield collected
    collected.assert_free_of(PASSWORD, CWA_PASSWORD, MQTT_PASSWORD, WRONG_PASSWORD, DEMO_PASSWORD)


# -- run ------------------------------------------------------------------------------------------


def test_run_with_a_config_file_bridges_serves_http_and_stops_cleanly_on_sigterm(
    sim: Simulator,
    secure_broker: Broker,
    make_mqtt_probe: Callable[..., MqttProbe],
    base_topic: str,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
    seen: Seen,
) -> None:
    probe = make_mqtt_probe(secure_broker, username=MQTT_USER, password=MQTT_PASSWORD)
    probe.subscribe("#")
    config = config_dict(sim, secure_broker.url, base_topic, mqtt={"username": MQTT_USER})
    path = write_config(tmp_path / "config.yaml", config)
    # The MQTT password comes from the environment, the CWA password from the file.
    env = {"CWA2MQTT_MQTT__PASSWORD": MQTT_PASSWORD}
    checked = subprocess.run(
        [sys.executable, "-m", "bridge", "check-config", "-c", str(path)],
        env={k: v for k, v in os.environ.items() if not k.startswith("CWA2MQTT_")} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seen.add("check-config", checked.stdout + checked.stderr)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("password: '**********'") == 2

    bridge = run_bridge("run", "-c", str(path), env=env)
    url = bridge.http_url()
    bridge.wait_output("bridge.ready")
    probe.wait_for(f"{base_topic}/bridge/state", lambda p: p == b"online")
    probe.wait_for(f"{base_topic}/bob", lambda p: presence_is(p, sim, BOB.uri))
    sim.set_presence(BOB.uri, availability=3500, activity=None, note="Back from lunch")
    probe.wait_for(f"{base_topic}/bob", lambda p: json.loads(p)["note"] == "Back from lunch")
    probe.publish(f"{base_topic}/self/set/status", b"busy")
    answer = json.loads(probe.wait_for(f"{base_topic}/bridge/response/self/set"))
    assert answer["status"] == "ok", answer
    check_http(url, seen, sim)

    sim.clear_recordings()
    code, took = stop_and_wait(bridge, signal.SIGTERM)
    out = assert_clean_output(bridge)
    seen.add("run output", out)
    seen.add_mqtt(probe)
    assert code == 0, out[-3000:]
    print(f"SIGTERM to exit: {took:.2f} s")
    assert "bridge.stopped" in out
    assert "DEBUG" in out  # the secret check below covered the most talkative level
    assert probe.retained(f"{base_topic}/bridge/state") == b"offline"
    assert probe.retained(f"{base_topic}/bridge/cwa") == b"offline"
    # Once each: a clean stop says offline once, not twice.
    for topic in (f"{base_topic}/bridge/state", f"{base_topic}/bridge/cwa"):
        live = [r.payload for r in probe.records(topic) if not r.retain]
        assert live[-1:] == [b"offline"], (topic, live)
        assert live.count(b"offline") == 1, (topic, live)
    assert any("terminateSession" in r.methods for r in sim.recordings)
    # The session ended: the account is signed out, not left "online" by a vanished client.
    assert not sim.sessions()


def test_run_from_the_environment_alone_and_sigint(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
    seen: Seen,
) -> None:
    if Path("/etc/cwa2mqtt/config.yaml").exists():
        pytest.skip("a system config file exists on this machine")
    assert not (tmp_path / "config.yaml").exists()
    mqtt_probe.subscribe("#")
    env = {
        "CWA2MQTT_CWA__URL": sim.url,
        "CWA2MQTT_CWA__USERNAME": ALICE.username or "",
        "CWA2MQTT_CWA__PASSWORD": PASSWORD,
        "CWA2MQTT_CWA__URI": ALICE.uri,
        "CWA2MQTT_WATCH": f"{BOB.uri},{CAROL.uri}",
        "CWA2MQTT_MQTT__URL": mosquitto.url,
        "CWA2MQTT_MQTT__BASE_TOPIC": base_topic,
        "CWA2MQTT_MQTT__CLIENT_ID": f"cwa2mqtt-{base_topic}",
        "CWA2MQTT_HOMEASSISTANT__PREFIX": f"{base_topic}-ha",
        "CWA2MQTT_HTTP__LISTEN": "127.0.0.1:0",
        "CWA2MQTT_LOG__LEVEL": "debug",
        "CWA2MQTT_LOG__FORMAT": "json",
    }
    bridge = run_bridge("run", env=env)
    url = bridge.http_url()
    mqtt_probe.wait_for(f"{base_topic}/carol_nguyen", lambda p: presence_is(p, sim, CAROL.uri))
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: presence_is(p, sim, BOB.uri))
    wait_until(lambda: fetch(url + "/healthz").status == 200, 10, "/healthz 200")
    seen.add_answer("/healthz", fetch(url + "/healthz"))

    code, _ = stop_and_wait(bridge, signal.SIGINT)
    out = assert_clean_output(bridge)
    seen.add("run output", out)
    seen.add_mqtt(mqtt_probe)
    assert code == 0, out[-3000:]
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(line.get("event") == "bridge.stopped" for line in lines), out[-2000:]
    assert mqtt_probe.retained(f"{base_topic}/bridge/state") == b"offline"
    assert mqtt_probe.retained(f"{base_topic}/bridge/cwa") == b"offline"


def test_rejected_credentials_exit_77_before_anything_is_published(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
    seen: Seen,
) -> None:
    mqtt_probe.subscribe("#")
    config = config_dict(sim, mosquitto.url, base_topic)
    config["cwa"]["password"] = WRONG_PASSWORD
    bridge = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))
    assert bridge.wait(30) == 77
    out = assert_clean_output(bridge)
    seen.add("run output", out)
    assert "cwa.credentials_rejected" in out
    assert any(r.channel == "logon" for r in sim.recordings)
    assert not sim.sessions()
    assert mqtt_probe.retained(f"{base_topic}/bridge/state") is None
    seen.add_mqtt(mqtt_probe)
    assert not [r.topic for r in mqtt_probe.records() if r.topic.startswith(base_topic)]


def test_cwa_unreachable_at_start_logs_one_warning_per_attempt_naming_host_and_wait(
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
    sim: Simulator,
) -> None:
    mqtt_probe.subscribe(f"{base_topic}/#")
    config = config_dict(sim, mosquitto.url, base_topic, log={"level": "info"})
    config["cwa"]["url"] = "http://127.0.0.1:9"  # nothing listens there (discard port)
    bridge = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))
    # MQTT is bridged meanwhile, and says CWA is offline.
    mqtt_probe.wait_for(f"{base_topic}/bridge/cwa", lambda p: p == b"offline", timeout=20)
    bridge.wait_output("cwa.unreachable host=127.0.0.1 attempt=2 ", timeout=20)
    bridge.signal(signal.SIGTERM)
    assert bridge.wait(10) == 0
    warnings = [line for line in bridge.output().splitlines() if " WARNING " in line]
    unreachable = [line for line in warnings if "cwa.unreachable" in line]
    assert len(unreachable) >= 2
    assert all(re.search(r"attempt=\d+ retry_in_s=[0-9.]+ reason=\S", line) for line in unreachable)
    assert all("Connection refused" in line for line in unreachable)  # why, not only which exception
    assert [line for line in warnings if "cwa." in line] == unreachable  # one line per attempt, no echo


def test_credentials_refused_once_cwa_is_reachable_exit_77(
    sim: Simulator,
    mosquitto: Broker,
    base_topic: str,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
) -> None:
    sim.faults.http_503(2, channel="logon")  # not there yet at boot ...
    config = config_dict(sim, mosquitto.url, base_topic, log={"level": "info"})
    config["cwa"]["password"] = WRONG_PASSWORD  # ... and then it refuses the password
    bridge = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))
    assert bridge.wait(60) == 77
    out = assert_clean_output(bridge)
    assert "cwa.unreachable host=127.0.0.1 attempt=1 " in out
    assert "cwa.credentials_rejected" in out
    assert not sim.sessions()


def test_bad_config_exits_78_and_names_every_problem_without_starting(
    sim: Simulator, run_bridge: Callable[..., BridgeProcess], tmp_path: Path, seen: Seen
) -> None:
    config = config_dict(
        sim, "", "base", mqtt={"url": "http://127.0.0.1:1", "base_topic": "base/#"}, log={"level": "loud"}
    )
    bridge = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))
    assert bridge.wait(30) == 78
    out = assert_clean_output(bridge)
    seen.add("run output", out)
    assert out.splitlines() == [
        "cwa2mqtt: invalid configuration (3 problems):",
        "  mqtt.url: must be mqtt://host[:port] or mqtts://host[:port]",
        "  mqtt.base_topic: must not contain +, # or NUL",
        "  log.level: must be 'debug', 'info', 'warning' or 'error'",
    ]
    assert not sim.recordings  # nothing was tried against CWA


# check-config on bad configs: (extra YAML or environment, the one problem line). Complements
# tests/test_cli.py, which checks several problems at once, YAML syntax errors and env-only use.
BAD_CONFIGS: list[tuple[str, dict[str, str], str]] = [
    (
        "mqtt: {url: 'http://broker:1883'}\n",
        {},
        "mqtt.url: must be mqtt://host[:port] or mqtts://host[:port]",
    ),
    ("mqtt: {qos: 3}\n", {}, "mqtt.qos: must be less than or equal to 2"),
    ("mqtt: {keepalive_s: 0}\n", {}, "mqtt.keepalive_s: must be greater than or equal to 1"),
    ("mqtt: {output: yaml}\n", {}, "mqtt.output: must be 'json', 'attributes' or 'both'"),
    ("http: {listen: nohost}\n", {}, "http.listen: expected HOST:PORT, e.g. 127.0.0.1:8099"),
    ("homeassistant: {prefix: 'a/+/b'}\n", {}, "homeassistant.prefix: must not contain +, # or NUL"),
    ("log: {format: xml}\n", {}, "log.format: must be 'text' or 'json'"),
    ("watch_contacts: maybe\n", {}, "watch_contacts: must be true or false"),
    ("cwa2: 1\n", {}, "cwa2: unknown key (did you mean 'cwa'?)"),
    ("  - sip:bob@example.org\n", {}, "watch[2].uri: sip:bob@example.org is already watched (watch[0])"),
    (
        "",
        {"CWA2MQTT_CWA__URL": "ftp://x"},
        "CWA2MQTT_CWA__URL: must be an http:// or https:// URL with a host",
    ),
    ("", {"CWA2MQTT_CWA__TIMEOUT_S": "0"}, "CWA2MQTT_CWA__TIMEOUT_S: must be greater than 0"),
    ("", {"CWA2MQTT_MQTT__QOS": "five"}, "CWA2MQTT_MQTT__QOS: must be a whole number"),
    (
        "",
        {"CWA2MQTT_CWA__PASSWORD": "", "CWA2MQTT_CWA__PASSWORD_FILE": "/nonexistent/pw"},
        "CWA2MQTT_CWA__PASSWORD_FILE: cannot read /nonexistent/pw: No such file or directory",
    ),
]


@pytest.mark.parametrize(
    ("extra", "env", "problem"), BAD_CONFIGS, ids=[p.split(":")[0] for *_, p in BAD_CONFIGS]
)
def test_check_config_names_the_problem(
    extra: str,
    env: dict[str, str],
    problem: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seen: Seen,
) -> None:
    for key in list(os.environ):
        if key.startswith("CWA2MQTT_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)
    for key, value in ({"CWA2MQTT_CWA__PASSWORD": CWA_PASSWORD} | env).items():
        if value:
            monkeypatch.setenv(key, value)
    path = tmp_path / "config.yaml"
    path.write_text(BASE_YAML + extra)
    code = main(["check-config", "-c", str(path)])
    out = capsys.readouterr()
    seen.add("check-config", out.out + out.err)
    assert code == 78
    assert out.out == ""
    assert out.err.splitlines() == ["cwa2mqtt: invalid configuration (1 problem):", f"  {problem}"]


def test_a_missing_config_file_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seen: Seen
) -> None:
    code = main(["check-config", "-c", str(tmp_path / "nope.yaml")])
    out = capsys.readouterr()
    seen.add("check-config", out.out + out.err)
    assert code == 78
    assert out.err.splitlines()[1] == f"  {tmp_path / 'nope.yaml'}: config file not found"


# -- the board in a real browser ------------------------------------------------------------------


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's /usr/bin/chromium is not installed")
def test_the_board_of_the_running_program_in_chromium(
    sim: Simulator,
    mosquitto: Broker,
    mqtt_probe: MqttProbe,
    base_topic: str,
    run_bridge: Callable[..., BridgeProcess],
    tmp_path: Path,
    seen: Seen,
) -> None:
    mqtt_probe.subscribe("#")
    sim.set_presence(CAROL.uri, note=HOSTILE_NOTE)
    config = config_dict(sim, mosquitto.url, base_topic)
    bridge = run_bridge("run", "-c", str(write_config(tmp_path / "config.yaml", config)))
    url = bridge.http_url()
    mqtt_probe.wait_for(f"{base_topic}/carol", lambda p: json.loads(p)["note"] == HOSTILE_NOTE)
    mqtt_probe.wait_for(f"{base_topic}/bob", lambda p: presence_is(p, sim, BOB.uri))

    shown = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            url + "/",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    seen.add("board DOM", dom)
    names = re.findall(r'<h2 class="name">([^<]*)</h2>', dom)
    assert set(names) == {BOB.name, CAROL.name, ALICE.name}, dom[-3000:]
    assert '<span class="label">Busy</span>' in dom  # Bob, in a meeting
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # the note is text...
    assert HOSTILE_NOTE not in dom  # ...never markup
    assert 'id="cwa" class="pill ok"' in dom or 'class="pill ok" id="cwa"' in dom

    code, _ = stop_and_wait(bridge, signal.SIGTERM)
    seen.add("run output", assert_clean_output(bridge))
    seen.add_mqtt(mqtt_probe)
    assert code == 0


# -- demo -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Address:
    """Just enough of a `Broker` for an `MqttProbe` on the demo's embedded broker."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def kill(self) -> None:
        pass


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    """Starts ``<program> demo --no-live`` with its output in ``demo.log``; killed at teardown."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWA2MQTT_")}
    with (tmp_path / "demo.log").open("wb") as log:
        started: list[subprocess.Popen[bytes]] = []

        def start(program: list[str]) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(
                [*program, "demo", "--no-live", "--http-listen", "127.0.0.1:0"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=tmp_path,
            )
            started.append(proc)
            return proc

        yield start
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)


def _demo_output(workdir: Path, proc: subprocess.Popen[bytes], needle: str, timeout: float = 30) -> str:
    log = workdir / "demo.log"
    wait_until(lambda: needle in log.read_text(errors="replace") or proc.poll() is not None, timeout, needle)
    text = log.read_text(errors="replace")
    assert needle in text, text[-3000:]
    return text


def test_demo_bridges_changing_presence_and_stops_on_ctrl_c(
    demo: Callable[[list[str]], subprocess.Popen[bytes]],
    make_mqtt_probe: Callable[..., Any],
    tmp_path: Path,
    seen: Seen,
) -> None:
    proc = demo([sys.executable, "-m", "bridge"])
    banner = _demo_output(tmp_path, proc, "Press Ctrl-C to stop.")
    broker = re.search(r"MQTT broker\s+mqtt://([\d.]+):(\d+)", banner)
    board = re.search(r"presence board\s+(http://\S+?)/?\s", banner)
    assert broker is not None, banner
    assert board is not None, banner
    probe: MqttProbe = make_mqtt_probe(_Address(broker.group(1), int(broker.group(2))))
    probe.subscribe("cwa2mqtt/#")
    probe.wait_for("cwa2mqtt/bridge/state", lambda p: p == b"online", timeout=15)

    def colleague_changes() -> list[Received]:
        # Not retained: published after we subscribed, so a change the bridge saw and passed on.
        return [
            r
            for r in probe.records()
            if not r.retain and re.fullmatch(r"cwa2mqtt/[a-z0-9_-]+", r.topic) and r.topic != "cwa2mqtt/self"
        ]

    wait_until(lambda: bool(colleague_changes()), 20, "a presence change from the demo scenario")
    change = json.loads(colleague_changes()[0].payload)
    assert change["status"] in {"available", "busy", "do_not_disturb", "be_right_back", "away", "offline"}
    health = seen.add_answer("/healthz", fetch(board.group(1) + "/healthz"))
    assert health.status == 200, health.text
    seen.add_answer("/api/presence", fetch(board.group(1) + "/api/presence"))

    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    out = (tmp_path / "demo.log").read_text(errors="replace")
    seen.add("demo output", out)
    seen.add_mqtt(probe)
    assert out.rstrip().endswith("cwa2mqtt demo stopped."), out[-2000:]
    assert "Traceback" not in out
    assert "ERROR" not in out


def test_the_installed_cwa2mqtt_command_runs_the_demo(
    demo: Callable[[list[str]], subprocess.Popen[bytes]], tmp_path: Path, seen: Seen
) -> None:
    program = Path(sys.executable).parent / "cwa2mqtt"  # what `make demo` runs
    if not program.exists():
        pytest.skip("the package is not installed with its console script")
    proc = demo([str(program)])
    banner = _demo_output(tmp_path, proc, "Press Ctrl-C to stop.")
    board = re.search(r"presence board\s+(http://\S+?)/?\s", banner)
    assert board is not None, banner
    wait_until(lambda: fetch(board.group(1) + "/healthz").status == 200, 15, "a healthy demo")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    out = (tmp_path / "demo.log").read_text(errors="replace")
    seen.add("demo output", out)
    assert out.rstrip().endswith("cwa2mqtt demo stopped.")
    assert "Traceback" not in out
