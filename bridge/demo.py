"""`cwa2mqtt demo`: the embedded default — simulator + broker + bridge, no config, no services.

The demo runs the very same `Bridge` as `cwa2mqtt run`; only its settings are made here instead
of read from a file. The simulator's demo scenario changes a colleague every few seconds, in
long-poll mode (the server answers as soon as something changes), so a newcomer sees the board
and the terminal move within seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
from pathlib import Path

import yaml

from bridge.app import Bridge, install_stop_handlers
from bridge.config import load_settings, parse_listen
from bridge.embedded_broker import EmbeddedBroker
from bridge.http import BoardEntry
from bridge.liveview import LiveView
from bridge.simulator import DEMO_PASSWORD, DEMO_URI, DEMO_USERNAME, SimOptions, Simulator

log = logging.getLogger(__name__)

DEFAULT_HTTP = "127.0.0.1:8099"
# On someone's own broker (--mqtt-url) the demo must not touch a real installation's retained
# topics, which live under the default base topic "cwa2mqtt".
EXTERNAL_BASE_TOPIC = "cwa2mqtt-demo"
EMBEDDED_BASE_TOPIC = "cwa2mqtt"


def _free_http_listen(wanted: str | None) -> str:
    """The board's address: the one asked for, else 8099, else any free loopback port."""
    if wanted:
        return wanted
    import socket  # noqa: PLC0415 - only the demo probes ports

    host, port = parse_listen(DEFAULT_HTTP)
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return f"{host}:0"
    return DEFAULT_HTTP


def demo_config(
    sim: Simulator, mqtt_url: str, http_listen: str, base_topic: str = EMBEDDED_BASE_TOPIC
) -> dict[str, object]:
    """The config a user would write for the demo scenario."""
    colleagues = [u for u in sim.user_uris() if u.lower() != DEMO_URI]
    return {
        "cwa": {
            "url": sim.url,
            "username": DEMO_USERNAME,
            "password": DEMO_PASSWORD,
            "uri": DEMO_URI,
        },
        "watch": colleagues,
        "mqtt": {"url": mqtt_url, "client_id": "cwa2mqtt-demo", "base_topic": base_topic},
        "http": {"listen": http_listen},
        "log": {"level": "warning"},
    }


def main(args: argparse.Namespace) -> int:
    live_wanted = not getattr(args, "no_live", False)
    stop = threading.Event()
    restore = install_stop_handlers(stop)
    sim = Simulator(
        options=SimOptions(scenario="demo", scenario_interval_s=2.0, long_poll=True, max_hold_s=20.0)
    )
    broker: EmbeddedBroker | None = None
    bridge: Bridge | None = None
    live: LiveView | None = None
    try:
        sim.start()
        mqtt_url = args.mqtt_url
        base = EXTERNAL_BASE_TOPIC if mqtt_url else EMBEDDED_BASE_TOPIC
        if not mqtt_url:
            broker = EmbeddedBroker()
            broker.start()
            mqtt_url = broker.url
        config = demo_config(sim, mqtt_url, _free_http_listen(getattr(args, "http_listen", None)), base)
        with tempfile.TemporaryDirectory(prefix="cwa2mqtt-demo-") as tmp:
            path = Path(tmp) / "demo.yaml"
            path.write_text(yaml.safe_dump(config))
            settings = load_settings(path, env={})
        # On a real broker the demo's Home Assistant entities get ids of their own too, so they can
        # never replace a real installation's (cwa2mqtt_demo_bob_status, not cwa2mqtt_bob_status).
        bridge = Bridge(settings, ha_node="cwa2mqtt_demo" if args.mqtt_url else "cwa2mqtt")
        bridge.start()
        board = bridge.http.url if bridge.http is not None else "(disabled)"
        which = "the embedded MQTT broker" if broker is not None else "your MQTT broker"
        print(
            f"cwa2mqtt demo: a simulated CWA server, {which} and the bridge are running.\n"
            f"  presence board   {board}/\n"
            f"  MQTT broker      {mqtt_url}   (try: mosquitto_sub -L '{mqtt_url}/{base}/#' -v)\n"
            f"  base topic       {base}/"
            + ("   (not cwa2mqtt/: a real bridge's topics stay untouched)\n" if broker is None else "\n")
            + f"  CWA simulator    {sim.url}   (control API {sim.control_url})\n"
            f"  set your status  publish 'busy' to {base}/self/set/status\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        bridge.wait_ready(10.0)
        running = bridge

        def source() -> tuple[list[BoardEntry], str]:
            snap = running.service.snapshot
            mqtt = "connected" if snap.mqtt_connected else "disconnected"
            return running.service.board(), f"CWA session {snap.session} · MQTT {mqtt}"

        live = LiveView(source, stream=sys.stdout, plain=not live_wanted)
        live.start()
        while not stop.wait(1.0):  # until Ctrl-C or SIGTERM
            pass
        return 0
    finally:
        if live is not None:
            live.stop()
        if bridge is not None:
            bridge.stop()
        if broker is not None:
            broker.stop()
        sim.stop()
        restore()
        print("cwa2mqtt demo stopped.", flush=True)
