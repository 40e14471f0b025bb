"""Where a container's lines go: brokers, topic and record key.

Precedence, most specific first (daemon.json ``log-opts`` reach the plugin
exactly like ``--log-opt``, so a label is the only way for a container to
override what the daemon set for everyone):

topic    label ``pylog.topic`` > log-opt ``kafka-topic`` > env ``KAFKA_TOPIC``
         > ``docker-logs``; all are templates (the ``tag`` syntax: ``{{.Name}}``,
         ``{{.ImageName}}``, ``{{index .ContainerLabels "app"}}``, ``{{.ID}}`` ...).
         The rendered name is made a legal Kafka topic: characters other than
         ``[A-Za-z0-9._-]`` become ``_``, at most 249 characters; an empty
         result falls back to ``docker-logs``.
key      log-opt ``kafka-key`` > env ``KAFKA_KEY`` > the full container ID, so a
         container's lines stay in one partition, in order. A key that renders
         empty means no key (round-robin partitions, no ordering).
brokers  log-opt ``kafka-brokers`` > env ``KAFKA_BROKERS``. Neither: no shipping.
         Other producer settings (TLS, SASL, compression ...) are plugin-wide.
on/off   log-opt ``kafka=false`` turns shipping off for a container.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import (
    DEFAULT_KAFKA_TOPIC,
    ILLEGAL_TOPIC_CHAR,
    MAX_TOPIC,
    KafkaSettings,
    LogOptions,
    is_topic_name,
)
from ..models import ContainerInfo
from ..tag import TagTemplate, TemplateError
from .errors import RoutingError

TOPIC_LABEL = "pylog.topic"


@dataclass(frozen=True)
class Route:
    brokers: tuple[str, ...]
    topic: str
    key: bytes | None


def topic_name(text: str) -> str:
    """A legal Kafka topic name from a rendered template."""
    name = ILLEGAL_TOPIC_CHAR.sub("_", text)[:MAX_TOPIC]
    return name if is_topic_name(name) else DEFAULT_KAFKA_TOPIC


def resolve(info: ContainerInfo, options: LogOptions, settings: KafkaSettings) -> Route | None:
    """The container's route, or None when it is not shipped (local-only)."""
    kafka = options.kafka
    if kafka.enabled is False:
        return None
    brokers = kafka.brokers or settings.brokers
    if not brokers:
        return None
    label = info.container_labels.get(TOPIC_LABEL, "").strip()
    if label:
        try:
            topic_template = TagTemplate(label)
        except TemplateError as exc:
            raise RoutingError(f"invalid label '{TOPIC_LABEL}': {exc}") from None
    else:
        topic_template = kafka.topic or settings.topic
    key = (kafka.key or settings.key).render(info)
    return Route(
        brokers=brokers,
        topic=topic_name(topic_template.render(info)),
        key=key.encode() if key else None,
    )
