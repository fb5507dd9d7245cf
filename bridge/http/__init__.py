"""The bridge's HTTP endpoint: health, Prometheus metrics and the presence board.

model    HealthReport, BoardEntry, dump_json: what the answers carry
guard    the Host guard (DNS rebinding) and the optional token
page     the board page and its Content-Security-Policy
wsgi     the routes, as a WSGI application
server   HttpServer: that application on waitress, with bounded threads and deadlines
probe    `cwa2mqtt health`'s client
"""

from bridge.http.model import BOARD_BRIDGE_KEYS, BoardEntry, HealthReport, dump_json
from bridge.http.probe import probe
from bridge.http.server import DEFAULT_HOST, HttpServer

__all__ = [
    "BOARD_BRIDGE_KEYS",
    "DEFAULT_HOST",
    "BoardEntry",
    "HealthReport",
    "HttpServer",
    "dump_json",
    "probe",
]
