"""The Prometheus metrics of interface.md §6, as a scraper sees them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from bridge.metrics import MAX_LABEL_VALUES, Metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(metrics: Metrics) -> tuple[dict[str, str], Samples]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    families = list(text_string_to_metric_families(body.decode("utf-8")))
    types = {f.name: f.type for f in families}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    return types, samples


def test_every_family_is_exposed_from_the_start_with_its_type() -> None:
    types, samples = _scrape(Metrics())

    assert types["cwa2mqtt_events_received"] == "counter"
    assert types["cwa2mqtt_presence_published"] == "counter"
    assert types["cwa2mqtt_command_results"] == "counter"
    assert types["cwa2mqtt_cwa_errors"] == "counter"
    assert types["cwa2mqtt_poll_latency_seconds"] == "histogram"
    assert types["cwa2mqtt_event_to_publish_seconds"] == "histogram"
    assert types["cwa2mqtt_session_restarts"] == "counter"
    assert types["cwa2mqtt_mqtt_reconnects"] == "counter"
    assert types["cwa2mqtt_watched_users"] == "gauge"
    assert types["cwa2mqtt_cwa_online"] == "gauge"
    assert types["cwa2mqtt_mqtt_connected"] == "gauge"
    # Known series exist at zero before anything happened, so the first error is not missed by rate().
    assert samples[("cwa2mqtt_cwa_errors_total", (("kind", "session_gone"),))] == 0
    assert samples[("cwa2mqtt_command_results_total", (("op", "self/set"), ("status", "error")))] == 0
    assert samples[("cwa2mqtt_events_received_total", (("kind", "user_presence"),))] == 0
    assert samples[("cwa2mqtt_session_restarts_total", ())] == 0


def test_counters_count_what_happened() -> None:
    metrics = Metrics()
    metrics.events_received("user_presence")
    metrics.events_received("user_presence", count=2)
    metrics.events_received("self_presence")
    metrics.publishes("presence")
    metrics.publishes("self")
    metrics.publishes("presence")
    metrics.command_result("self/set", "ok")
    metrics.command_result("refresh", "error")
    metrics.cwa_error("throttled")
    metrics.cwa_error("protocol")
    metrics.cwa_error("protocol")
    metrics.session_restart()
    metrics.mqtt_reconnect()
    metrics.mqtt_reconnect()

    _, samples = _scrape(metrics)

    assert samples[("cwa2mqtt_events_received_total", (("kind", "user_presence"),))] == 3
    assert samples[("cwa2mqtt_events_received_total", (("kind", "self_presence"),))] == 1
    assert samples[("cwa2mqtt_presence_published_total", (("kind", "presence"),))] == 2
    assert samples[("cwa2mqtt_presence_published_total", (("kind", "self"),))] == 1
    assert samples[("cwa2mqtt_command_results_total", (("op", "self/set"), ("status", "ok")))] == 1
    assert samples[("cwa2mqtt_command_results_total", (("op", "refresh"), ("status", "error")))] == 1
    assert samples[("cwa2mqtt_cwa_errors_total", (("kind", "throttled"),))] == 1
    assert samples[("cwa2mqtt_cwa_errors_total", (("kind", "protocol"),))] == 2
    assert samples[("cwa2mqtt_session_restarts_total", ())] == 1
    assert samples[("cwa2mqtt_mqtt_reconnects_total", ())] == 2


def test_histograms_record_latencies_in_buckets() -> None:
    metrics = Metrics()
    metrics.observe_poll_latency(0.2)
    metrics.observe_poll_latency(75.0)  # a poll the server held open
    metrics.observe_event_to_publish(0.004)

    _, samples = _scrape(metrics)

    assert samples[("cwa2mqtt_poll_latency_seconds_count", ())] == 2
    assert samples[("cwa2mqtt_poll_latency_seconds_sum", ())] == 75.2
    assert samples[("cwa2mqtt_poll_latency_seconds_bucket", (("le", "0.25"),))] == 1
    assert samples[("cwa2mqtt_poll_latency_seconds_bucket", (("le", "90.0"),))] == 2
    assert samples[("cwa2mqtt_event_to_publish_seconds_bucket", (("le", "0.005"),))] == 1
    assert samples[("cwa2mqtt_event_to_publish_seconds_count", ())] == 1


def test_a_negative_duration_from_a_clock_step_counts_as_zero() -> None:
    metrics = Metrics()
    metrics.observe_poll_latency(-1.0)

    _, samples = _scrape(metrics)

    assert samples[("cwa2mqtt_poll_latency_seconds_sum", ())] == 0
    assert samples[("cwa2mqtt_poll_latency_seconds_count", ())] == 1


def test_gauges_show_the_current_state() -> None:
    metrics = Metrics()
    metrics.set_gauges(watched=3, cwa_online=True, mqtt_connected=False)
    _, samples = _scrape(metrics)
    assert samples[("cwa2mqtt_watched_users", ())] == 3
    assert samples[("cwa2mqtt_cwa_online", ())] == 1
    assert samples[("cwa2mqtt_mqtt_connected", ())] == 0

    metrics.set_gauges(watched=0, cwa_online=False, mqtt_connected=True)
    _, samples = _scrape(metrics)
    assert samples[("cwa2mqtt_watched_users", ())] == 0
    assert samples[("cwa2mqtt_cwa_online", ())] == 0
    assert samples[("cwa2mqtt_mqtt_connected", ())] == 1


def test_the_version_is_exposed() -> None:
    from bridge import __version__

    _, samples = _scrape(Metrics())

    assert samples[("cwa2mqtt_build_info", (("version", __version__),))] == 1


def test_two_instances_do_not_share_counts() -> None:
    first, second = Metrics(), Metrics()
    first.session_restart()

    assert _scrape(first)[1][("cwa2mqtt_session_restarts_total", ())] == 1
    assert _scrape(second)[1][("cwa2mqtt_session_restarts_total", ())] == 0


def test_no_metric_carries_a_per_user_label() -> None:
    metrics = Metrics()
    metrics.events_received("user_presence")
    metrics.publishes("presence")

    _, samples = _scrape(metrics)

    allowed = {"kind", "op", "status", "le", "version"}
    for name, labels in samples:
        if name.startswith("cwa2mqtt_"):
            assert {key for key, _ in labels} <= allowed, name


def test_label_values_cannot_grow_without_bound() -> None:
    metrics = Metrics()
    for n in range(500):
        metrics.cwa_error(f"weird_kind_{n}")
        metrics.events_received("x" * 10_000)

    _, samples = _scrape(metrics)

    kinds = {dict(labels)["kind"] for name, labels in samples if name == "cwa2mqtt_cwa_errors_total"}
    assert len(kinds) <= MAX_LABEL_VALUES + 1
    assert "other" in kinds
    assert sum(v for (name, _), v in samples.items() if name == "cwa2mqtt_cwa_errors_total") == 500
    event_kinds = {
        dict(labels)["kind"] for name, labels in samples if name == "cwa2mqtt_events_received_total"
    }
    assert max(len(kind) for kind in event_kinds) <= 64


def test_an_unexpected_command_status_counts_as_an_error() -> None:
    metrics = Metrics()
    metrics.command_result("refresh", "timeout")

    _, samples = _scrape(metrics)

    assert samples[("cwa2mqtt_command_results_total", (("op", "refresh"), ("status", "error")))] == 1
    assert not any(dict(labels).get("status") == "timeout" for _, labels in samples)


def test_render_offers_openmetrics_when_asked() -> None:
    body, content_type = Metrics().render("application/openmetrics-text; version=1.0.0")

    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
