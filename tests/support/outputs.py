"""Collecting everything a user could see during a test, to check that no secret is in it.

    seen = Seen()
    seen.add("run output", process.output())
    seen.add_answer("/healthz", fetch(url + "/healthz"))
    seen.add_mqtt(probe)                        # every topic and payload the probe received
    seen.assert_free_of(PASSWORD, MQTT_PASSWORD)

`wait_until(condition, timeout, what)` polls a condition (never a fixed sleep as the check).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.support.convergence import eventually
from tests.support.http_endpoint import Answer
from tests.support.mqtt import MqttProbe


@dataclass
class Seen:
    """Everything a test saw, labelled by where it came from."""

    texts: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, text: str | bytes) -> None:
        self.texts.append((label, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))

    def add_answer(self, label: str, answer: Answer) -> Answer:
        self.add(label, answer.body)
        self.add(f"{label} headers", json.dumps(answer.headers))
        return answer

    def add_mqtt(self, probe: MqttProbe) -> None:
        for record in probe.records():
            self.add(f"mqtt {record.topic}", record.topic.encode() + b" " + record.payload)

    def assert_free_of(self, *secrets: str) -> None:
        for secret in secrets:
            for label, text in self.texts:
                if secret and secret in text:  # not `assert secret not in text`: it would print it
                    pytest.fail(f"a password appears in {label}")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """The one predicate wait of the tests: fails with ``what`` when ``condition`` is not met in time."""
    if not eventually(condition, timeout):
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")
