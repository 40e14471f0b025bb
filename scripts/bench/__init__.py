"""``make bench``: the same workloads through the ``none``, ``json-file``, ``local``
and ``pylog`` logging drivers on the real Docker engine, checked against pylog's
performance targets (see docs/performance.md).

Run as ``PYTHONPATH=scripts python -m bench --help``. The modules:

* :mod:`bench.stats`     pure: samples, medians, percentiles, ratios, targets;
* :mod:`bench.report`    pure: the markdown table, JSON, and the PNG chart;
* :mod:`bench.engine`    the Docker CLI: container groups, the pylog processes;
* :mod:`bench.kafka`     the test broker, topics, offsets, append times;
* :mod:`bench.ceiling`   Kafka's own ProducerPerformance: the command, its summary;
* :mod:`bench.workloads` one function per workload;
* :mod:`bench.__main__`  the command line.
"""
