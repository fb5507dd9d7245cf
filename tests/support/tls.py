"""A throw-away certificate authority for TLS tests (the ``openssl`` binary; skipped without it).

`test_ca` (session-scoped: RSA key generation is the slow part) gives a `TestCa`: a CA, a server
certificate for ``127.0.0.1`` signed by it, and an unrelated second CA for the "wrong CA" cases.
Its ``files`` are a `TlsFiles` for `make_broker(tls=...)`; ``cert_file``/``key_file`` also serve
the simulator (`SimOptions.tls_cert`/``tls_key``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mqtt import TlsFiles


@dataclass(frozen=True)
class TestCa:
    __test__ = False  # not a pytest test class

    ca_file: str
    cert_file: str
    key_file: str
    other_ca_file: str  # a CA that did not sign the server certificate

    @property
    def files(self) -> TlsFiles:
        return TlsFiles(self.ca_file, self.cert_file, self.key_file)


def make_test_ca(directory: Path) -> TestCa:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl binary to make a test CA")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    for name in ("ca", "other-ca"):
        run(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=cwa2mqtt test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
        )  # fmt: skip
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "s.csr",
    )
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509", "-req", "-in", "s.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf",
    )  # fmt: skip
    return TestCa(
        str(directory / "ca.pem"),
        str(directory / "server.pem"),
        str(directory / "server.key"),
        str(directory / "other-ca.pem"),
    )


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return make_test_ca(tmp_path_factory.mktemp("tls"))
