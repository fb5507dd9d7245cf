"""The JSON control API, scenarios, recordings and `cli_main`'s users file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.errors import ConfigError
from bridge.simulator import (
    DEMO_PASSWORD,
    DEMO_USERNAME,
    SimOptions,
    Simulator,
    demo_users,
    load_users,
    load_users_file,
)
from tests.support.simulator import sign_in

BOB = "sip:bob@example.org"


@pytest.fixture
def control(simulator: Simulator) -> Any:
    assert simulator.control_url
    with httpx.Client(base_url=simulator.control_url, timeout=10) as client:
        yield client


def test_users_list_get_and_patch(simulator: Simulator, control: httpx.Client) -> None:
    users = control.get("/users").json()
    assert {u["uri"] for u in users} >= {BOB, "sip:alice@example.org"}
    assert all("password" not in u for u in users)
    patched = control.patch(f"/users/{BOB}", json={"availability": 6500, "note": "Meeting"})
    assert patched.status_code == 200
    assert patched.json()["truth"]["status"] == "busy"
    assert simulator.truth(BOB).note == "Meeting"
    assert control.get(f"/users/{BOB}").json()["availability"] == 6500
    assert control.get("/users/sip:nobody@example.org").status_code == 404
    assert control.patch(f"/users/{BOB}", json={"password": "x"}).status_code == 400


def test_add_user_then_sign_in(simulator: Simulator, control: httpx.Client) -> None:
    response = control.post(
        "/users", json={"uri": "sip:new@example.org", "username": "new", "password": "pw", "name": "New"}
    )
    assert response.status_code == 201
    assert response.json()["can_sign_in"] is True
    cwa = sign_in(simulator, "new", "pw")
    assert cwa.sid


def test_faults_recordings_sessions_stats(simulator: Simulator, control: httpx.Client) -> None:
    cwa = sign_in(simulator)
    assert control.post("/faults/http_503", json={"n": 1, "channel": "data"}).status_code == 200
    assert cwa.poll_raw().status_code == 503
    recordings = control.get("/recordings").json()
    assert recordings[-1]["fault"] == "http_503"
    assert recordings[-1]["channel"] == "data"
    assert any(r["methods"] == ["initiateSession"] for r in recordings)
    dumped = json.dumps(recordings)
    assert DEMO_PASSWORD not in dumped
    assert (cwa.ticket or "?") not in dumped
    sessions = control.get("/sessions").json()
    assert [s["user"] for s in sessions] == ["sip:alice@example.org"]
    stats = control.get("/stats").json()
    assert stats["sessions"] == 1
    assert stats["requests"]["data"] >= 2
    assert stats["events_delivered"] >= 5
    assert control.post("/faults/kill_sessions").status_code == 200
    assert control.get("/sessions").json() == []
    assert control.post("/faults/nonsense", json={}).status_code == 400
    assert control.post("/reset-recordings").status_code == 200
    assert control.get("/recordings").json() == []


def test_demo_scenario_changes_presence(make_simulator: Any) -> None:
    sim = make_simulator(scenario="demo", scenario_interval_s=0.01, seed=1)
    before = {uri: sim.truth(uri) for uri in sim.user_uris()}
    sim.wait_for(lambda: sum(sim.truth(u) != before[u] for u in before) >= 3)
    assert len(before) >= 7


def test_load_users_and_load_scenario(make_simulator: Any) -> None:
    users = load_users(3)
    assert [u.uri for u in users] == [f"sip:user0000{i}@example.org" for i in (1, 2, 3)]
    sim = make_simulator(scenario="load", load_users=50, load_rate=200.0, seed=3)
    assert len(sim.user_uris()) == 50
    sim.wait_for(lambda: any(sim.truth(u).availability != 3500 for u in sim.user_uris()))


def test_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(
        "- uri: sip:x@example.org\n  username: EXAMPLE\\x\n  password: secret\n"
        "  name: X\n  availability: 6500\n"
        "- uri: sip:y@example.org\n  note: hello\n"
    )
    users = load_users_file(str(path))
    assert [(u.uri, u.availability, u.note) for u in users] == [
        ("sip:x@example.org", 6500, None),
        ("sip:y@example.org", 3500, "hello"),
    ]
    assert "secret" not in repr(users)
    path.write_text("- name: no uri\n")
    with pytest.raises(ConfigError, match="uri"):
        load_users_file(str(path))


def test_the_control_api_takes_a_status_name_for_an_availability(
    simulator: Simulator, control: httpx.Client
) -> None:
    patched = control.patch(f"/users/{BOB}", json={"availability": "busy"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["availability"], patched.json()["truth"]["status"]) == (6500, "busy")
    patched = control.patch(f"/users/{BOB}", json={"availability": "Do not disturb"})
    assert patched.json()["truth"]["status"] == "do_not_disturb"
    added = control.post("/users", json={"uri": "sip:new@example.org", "availability": "away"})
    assert added.status_code == 201, added.text
    assert added.json()["truth"]["status"] == "away"
    refused = control.patch(f"/users/{BOB}", json={"availability": "bussy"})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("availability: 'bussy' is neither a number nor a status (")
    assert "busy (6500)" in refused.json()["error"]


def test_simulate_names_every_bad_entry_of_a_users_file(run_bridge: Any, tmp_path: Path) -> None:
    (tmp_path / "users.yaml").write_text(
        "- {uri: sip:x@example.org, availability: busy}\n"
        "- {uri: sip:y@example.org, availability: bussy, colour: red}\n"
        "- {name: no uri}\n"
        "- {uri: sip:x@example.org, password: [1]}\n"
    )
    process = run_bridge("simulate", "--users", "users.yaml")
    assert process.wait(30) == 78
    assert process.output().splitlines() == [
        "cwa2mqtt simulate: users.yaml: entry 1 (sip:y@example.org): colour: unknown key (known: uri, "
        "username, password, name, availability, activity, note, note_type, contacts)",
        "cwa2mqtt simulate: users.yaml: entry 1 (sip:y@example.org): availability: 'bussy' is neither a "
        "number nor a status (available (3500), busy (6500), do_not_disturb (9500), be_right_back (12500), "
        "away (15500), offline (18500))",
        "cwa2mqtt simulate: users.yaml: entry 2: uri: required, a SIP URI like sip:bob@example.org",
        "cwa2mqtt simulate: users.yaml: entry 3 (sip:x@example.org): uri: already listed as entry 0",
        "cwa2mqtt simulate: users.yaml: entry 3 (sip:x@example.org): password: must be text",
    ]


@pytest.mark.parametrize("option", ["--listen", "--control"])
def test_simulate_on_a_busy_port_names_the_address(option: str, run_bridge: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = run_bridge("simulate", option, f"127.0.0.1:{port}")
        assert process.wait(30) == 78
    what = "CWA endpoint" if option == "--listen" else "control API"
    assert process.output().splitlines() == [
        f"cwa2mqtt simulate: cannot listen on 127.0.0.1:{port} ({what}): Address already in use"
    ]


def test_simulate_without_users_prints_the_demo_users(run_bridge: Any) -> None:
    process = run_bridge("simulate")
    process.wait_output("control API:")
    out = process.output()
    assert f"user {DEMO_USERNAME}  password {DEMO_PASSWORD}" in out
    colleagues = [u.uri for u in demo_users() if u.uri != "sip:alice@example.org"]
    assert f"  demo users (6, presence changing): {' '.join(colleagues)}" in out.splitlines()


def test_stop_is_idempotent_and_context_manager_works() -> None:
    with Simulator(options=SimOptions(control=False)) as sim:
        assert sim.control_url is None
        sim.start()
    sim.stop()


def test_cli_main_prints_credentials_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = "from bridge.simulator import cli_main; raise SystemExit(cli_main('127.0.0.1:0', None, None))"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("control API"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(20), lines
        output = "".join(lines)
        assert DEMO_USERNAME in output
        assert DEMO_PASSWORD in output
        assert "http://127.0.0.1:" in output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        proc.stdout.close()
