"""The service's side of the status lights: feeds the controller, sends what it decides.

The controller (`bridge.lights.controller`, pure) decides; this glue gives it presence, ticks,
reconnects and delivery results on the loop thread, and sends its output: device commands to
MQTT, requests for lights behind an HTTP API to their sender (which never blocks the loop), and
the lights' retained state through the mirror. Nothing is sent before the start gate opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from bridge.lights.controller import LightController, Outgoing
from bridge.presence import Presence
from bridge.service.gate import StartGate
from bridge.service.mirror import Mirror
from bridge.service.ports import LightSenderPort, MqttPort


class Lights:
    def __init__(
        self,
        controller: LightController | None,
        sender: LightSenderPort | None,
        *,
        mqtt: MqttPort,
        mirror: Mirror,
        gate: StartGate,
    ) -> None:
        self.controller = controller
        self._sender = sender
        self._mqtt = mqtt
        self._mirror = mirror
        self._gate = gate
        self.state: dict[str, bytes] = {}  # light -> its retained state, for the HTTP snapshot

    def names(self) -> tuple[str, ...]:
        return self.controller.names() if self.controller is not None else ()

    def next_wakeup(self) -> datetime | None:
        return self.controller.next_wakeup() if self.controller is not None else None

    def presence(self, presences: Callable[[], Mapping[str, Presence | None]]) -> None:
        """A presence changed; ``presences`` is called only when there are lights to decide:
        building it costs O(users), too much for every notice of a large start."""
        if self.controller is not None and self._gate.open:
            self.send(self.controller.on_presence(presences()))

    def tick(self) -> None:
        if self.controller is not None and self._gate.open:
            self.send(self.controller.on_tick())

    def reconnected(self, ha_birth: bool) -> None:
        """After a broker reconnect every device gets its command again; after HA's birth only
        the lights' retained state is needed (the devices lost nothing)."""
        if self.controller is None:
            return
        outgoing = self.controller.on_reconnect()
        if ha_birth:
            outgoing = [out for out in outgoing if out.kind == "state"]
        self.send(outgoing)

    def delivered(self, light: str, ok: bool) -> None:
        if self.controller is not None:
            self.send(self.controller.delivered(light, ok))

    def override(self, light: str, payload: bytes) -> dict[str, object] | None:
        """``<base>/lights/<name>/set``: the response body, or None for an unknown light."""
        if self.controller is None or light not in self.controller.names():
            return None
        outs, response = self.controller.set_override(light, payload)
        self._gate.force()  # the controller has evaluated every light now: they have started
        self.send(outs)
        return response

    def send(self, outgoing: Iterable[Outgoing]) -> None:
        for out in outgoing:
            if out.kind == "state":
                self.state[out.light] = out.payload
                self._mirror.retain_light_state(out.light, out.payload)
            elif out.kind == "http":
                if self._sender is not None and out.request is not None:
                    self._sender.submit(out.light, out.request)
            elif out.topic is not None:
                self._mqtt.publish(out.topic, out.payload, retain=out.retain)
