"""cwa2mqtt: Communicator Web Access presence to MQTT."""

__version__ = "0.2.0"
