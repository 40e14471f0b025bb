"""A real Apache Kafka broker on the machine's Java (``kafka.broker``), for the Kafka
and end-to-end tests and for the benchmark; ``fetch.sh`` and ``pom.xml`` beside it
fetch the jars. Importable with ``scripts`` on the path (pytest's ``pythonpath``,
the Makefile's ``PYTHONPATH``).
"""
