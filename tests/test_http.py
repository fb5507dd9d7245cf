"""The HTTP endpoint of interface.md §6: /healthz, /metrics, /api/presence, routing and lifecycle."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.errors import ConfigError
from bridge.http import BoardEntry, HealthReport, HttpServer, probe
from bridge.metrics import Metrics
from bridge.presence import Note, Presence
from tests.support.http_endpoint import BoardServer, fetch, make_entry


def test_healthz_is_200_with_json_while_healthy(board_server: BoardServer) -> None:
    answer = fetch(board_server.url + "/healthz")

    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = json.loads(answer.body)
    assert body["status"] == "ok"
    assert body["mqtt"] == "connected"
    assert body["cwa"] == "online"


def test_healthz_is_503_with_reasons_when_unhealthy(board_server: BoardServer) -> None:
    board_server.health = HealthReport(
        False,
        {"mqtt": "disconnected", "cwa": "offline", "reasons": ["mqtt disconnected"], "since": "x"},
    )

    answer = fetch(board_server.url + "/healthz")

    assert answer.status == 503
    body = json.loads(answer.body)
    assert body["status"] == "unhealthy"
    assert body["mqtt"] == "disconnected"
    assert body["reasons"] == ["mqtt disconnected"]


def test_healthz_follows_the_bridge_state_on_every_request(board_server: BoardServer) -> None:
    assert fetch(board_server.url + "/healthz").status == 200
    board_server.health = HealthReport(False, {"mqtt": "disconnected"})
    assert fetch(board_server.url + "/healthz").status == 503
    board_server.health = HealthReport(True, {"mqtt": "connected"})
    assert fetch(board_server.url + "/healthz").status == 200


def test_healthz_status_field_always_agrees_with_the_code(board_server: BoardServer) -> None:
    board_server.health = HealthReport(False, {"status": "ok", "mqtt": "disconnected"})

    answer = fetch(board_server.url + "/healthz")

    assert answer.status == 503
    assert json.loads(answer.body)["status"] == "unhealthy"


def test_healthz_serialises_datetimes_and_enums() -> None:
    from bridge.presence import Status

    moment = datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)
    report = HealthReport(True, {"since": moment, "self": Status.BUSY, "watched": ("bob", "carol")})
    with HttpServer("127.0.0.1", 0, health=lambda: report, metrics=Metrics(), board=list) as server:
        body = json.loads(fetch(server.url + "/healthz").body)

    assert body["since"] == "2026-11-22T09:14:03Z"
    assert body["self"] == "busy"
    assert body["watched"] == ["bob", "carol"]


def test_a_failing_health_callable_gives_503_and_the_server_keeps_serving() -> None:
    def broken() -> HealthReport:
        raise RuntimeError("boom")

    with HttpServer("127.0.0.1", 0, health=broken, metrics=Metrics(), board=list) as server:
        first = fetch(server.url + "/healthz")
        second = fetch(server.url + "/metrics")

    assert first.status == 503
    assert json.loads(first.body)["status"] == "unhealthy"
    assert "boom" not in first.text
    assert second.status == 200


def test_metrics_is_prometheus_text_with_every_family(board_server: BoardServer) -> None:
    board_server.metrics.events_received("user_presence")
    board_server.metrics.publishes("presence")
    board_server.metrics.command_result("self/set", "ok")
    board_server.metrics.cwa_error("throttled")
    board_server.metrics.observe_poll_latency(0.3)
    board_server.metrics.observe_event_to_publish(0.01)
    board_server.metrics.session_restart()
    board_server.metrics.mqtt_reconnect()
    board_server.metrics.set_gauges(watched=2, cwa_online=True, mqtt_connected=True)

    answer = fetch(board_server.url + "/metrics")

    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    for name in (
        "cwa2mqtt_events_received",
        "cwa2mqtt_presence_published",
        "cwa2mqtt_command_results",
        "cwa2mqtt_cwa_errors",
        "cwa2mqtt_poll_latency_seconds",
        "cwa2mqtt_event_to_publish_seconds",
        "cwa2mqtt_session_restarts",
        "cwa2mqtt_mqtt_reconnects",
        "cwa2mqtt_watched_users",
        "cwa2mqtt_cwa_online",
        "cwa2mqtt_mqtt_connected",
    ):
        assert name in families, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("cwa2mqtt_cwa_errors_total", (("kind", "throttled"),))] == 1
    assert samples[("cwa2mqtt_watched_users", ())] == 2


def test_metrics_speaks_openmetrics_to_a_scraper_that_asks(board_server: BoardServer) -> None:
    answer = fetch(
        board_server.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


def test_api_presence_lists_every_user_and_the_bridge_state(board_server: BoardServer) -> None:
    board_server.users = [
        make_entry("bob", status="busy", activity="in_a_meeting", note="Back at 3pm"),
        make_entry("carol", status="offline", watchable=False, last_change=None, name=None),
    ]
    board_server.health = HealthReport(
        False, {"mqtt": "connected", "cwa": "offline", "session": "reconnecting", "reasons": ["cwa down 5m"]}
    )

    answer = fetch(board_server.url + "/api/presence")

    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "no-store"
    data = json.loads(answer.body)
    assert data["bridge"] == {
        "status": "unhealthy",
        "cwa": "offline",
        "mqtt": "connected",
        "session": "reconnecting",
    }
    assert [u["id"] for u in data["users"]] == ["bob", "carol"]
    bob, carol = data["users"]
    assert bob == {
        "id": "bob",
        "name": "Bob",
        "uri": "sip:bob@example.org",
        "status": "busy",
        "idle": False,
        "activity": "in_a_meeting",
        "note": "Back at 3pm",
        "out_of_office": False,
        "last_change": "2026-11-22T09:14:03Z",
        "watchable": True,
        "is_self": False,
        "unwatchable": None,
    }
    assert carol["watchable"] is False
    assert carol["name"] is None
    assert carol["last_change"] is None
    # The server's clock lets the page compute "since" correctly on a kiosk with a wrong clock.
    assert datetime.fromisoformat(data["now"].replace("Z", "+00:00")).tzinfo is not None


def test_api_presence_with_nobody_watched_is_an_empty_list(board_server: BoardServer) -> None:
    data = json.loads(fetch(board_server.url + "/api/presence").body)

    assert data["users"] == []


def test_board_entry_from_presence_carries_the_presence_json_values() -> None:
    moment = datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)
    presence = Presence.observe(
        "sip:bob@example.org", "Bob", 6500, "InAMeeting", [Note("OOF", "On leave")]
    ).advance(None, moment)

    entry = BoardEntry.from_presence("bob", presence, watchable=False)

    assert entry == BoardEntry(
        id="bob",
        name="Bob",
        uri="sip:bob@example.org",
        status="busy",
        idle=False,
        activity="in_a_meeting",
        note="On leave",
        out_of_office=True,
        last_change="2026-11-22T09:14:03Z",
        watchable=False,
    )


def test_unknown_paths_are_404(board_server: BoardServer) -> None:
    for path in ("/nope", "/api", "/healthz/x", "/../etc/passwd", "/web/board.html"):
        assert fetch(board_server.url + path).status == 404, path


def test_query_strings_do_not_change_the_route(board_server: BoardServer) -> None:
    assert fetch(board_server.url + "/healthz?verbose=1").status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"])
def test_only_get_and_head_are_allowed(board_server: BoardServer, method: str) -> None:
    answer = fetch(board_server.url + "/healthz", method=method, body=b"{}")

    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"


def test_head_answers_headers_without_a_body(board_server: BoardServer) -> None:
    full = fetch(board_server.url + "/api/presence")
    head = fetch(board_server.url + "/api/presence", method="HEAD")

    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-type"] == full.headers["content-type"]
    assert int(head.headers["content-length"]) > 0


def test_port_zero_binds_a_free_loopback_port_reported_by_url() -> None:
    server = HttpServer("127.0.0.1", 0, health=lambda: HealthReport(True), metrics=Metrics(), board=list)
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(":0")
        assert fetch(server.url + "/healthz").status == 200
    finally:
        server.stop()


def test_stop_releases_the_port_and_is_idempotent() -> None:
    server = HttpServer("127.0.0.1", 0, health=lambda: HealthReport(True), metrics=Metrics(), board=list)
    server.start()
    url = server.url
    port = int(url.rsplit(":", 1)[1])
    server.stop()
    server.stop()

    with pytest.raises(OSError, match=r"\[Errno"):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = HttpServer("127.0.0.1", port, health=lambda: HealthReport(True), metrics=Metrics(), board=list)
    with again:
        assert fetch(again.url + "/healthz").status == 200


def test_a_busy_port_is_a_config_error_naming_the_address_and_the_way_out() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HttpServer(
            "127.0.0.1", port, health=lambda: HealthReport(True), metrics=Metrics(), board=list
        )
        with pytest.raises(ConfigError) as caught:
            server.start()

    assert caught.value.problems == [
        f"http.listen: cannot listen on 127.0.0.1:{port}: address already in use; "
        'pick another port or set http.listen: "" to disable'
    ]


def test_wildcard_host_gives_a_loopback_url() -> None:
    server = HttpServer("0.0.0.0", 8099, health=lambda: HealthReport(True), metrics=Metrics(), board=list)  # noqa: S104

    assert server.url == "http://127.0.0.1:8099"


def test_ipv6_loopback_is_served() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe_sock:
            probe_sock.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with HttpServer("::1", 0, health=lambda: HealthReport(True), metrics=Metrics(), board=list) as server:
        assert server.url.startswith("http://[::1]:")
        assert fetch(server.url + "/healthz").status == 200


def test_probe_reports_health_for_the_health_command(board_server: BoardServer) -> None:
    healthy, body = probe(board_server.url)
    assert healthy
    assert json.loads(body)["status"] == "ok"

    board_server.health = HealthReport(False, {"mqtt": "disconnected"})
    healthy, body = probe(board_server.url + "/healthz")
    assert not healthy
    assert json.loads(body)["mqtt"] == "disconnected"


def test_probe_of_a_closed_port_is_unhealthy() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    healthy, reason = probe(f"http://127.0.0.1:{port}", timeout=2)

    assert not healthy
    assert reason


def test_probe_rejects_non_http_urls() -> None:
    healthy, reason = probe("file:///etc/passwd")

    assert not healthy
    assert "scheme" in reason
