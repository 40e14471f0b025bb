"""pylog: a Docker logging driver plugin.

dockerd hands pylog a FIFO of framed protobuf ``LogEntry`` messages per container;
pylog keeps a json-file compatible log per container (served back to ``docker logs``
through ReadLogs) and ships enriched records to Kafka.

Import direction, top-down: ``api`` -> ``service`` -> ``driver`` -> ``ingest`` /
``store`` -> ``config`` / ``framing`` / ``models`` / ``timefmt``.
"""

__version__ = "0.1.0"
