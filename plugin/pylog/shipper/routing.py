"""Where a container's lines go: brokers, topic and record key.

Precedence, most specific first (daemon.json ``log-opts`` reach the plugin
exactly like ``--log-opt``, so a label is the only way for a container to
override what the daemon set for everyone):

topic    label ``pylog.topic`` > the ``target`` of a ``stdout`` declaration
         (``pylog.logs.<name>=stdout``: its ``.target``, else its name) >
         log-opt ``kafka-topic`` > env ``KAFKA_TOPIC`` > ``docker-logs``.
         ``pylog.topic`` stays first: it is the older, explicit way to name the
         container's topic and a container that sets both meant it; a declaration
         beats the log-opts as every label does. The label and the log-opts are
         templates (the ``tag`` syntax: ``{{.Name}}``,
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

A declared file log (``pylog.logs.<name>=/path``) goes to its own topic, the
declaration's ``target`` (default: its name; a literal topic, not a template),
with the container's brokers and key (:func:`file_route`): its lines stay in
one partition, in order, and ``kafka=false`` or no brokers ship none of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..config import (
    DEFAULT_KAFKA_TOPIC,
    ILLEGAL_TOPIC_CHAR,
    MAX_TOPIC,
    Declaration,
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


def resolve(
    info: ContainerInfo,
    options: LogOptions,
    settings: KafkaSettings,
    declarations: Iterable[Declaration] = (),
) -> Route | None:
    """The container's route (of its stdout/stderr), or None when it is not shipped
    (local-only); ``declarations``: the container's declared logs."""
    kafka = options.kafka
    if kafka.enabled is False:
        return None
    brokers = kafka.brokers or settings.brokers
    if not brokers:
        return None
    key_text = (kafka.key or settings.key).render(info)
    key = key_text.encode() if key_text else None
    label = info.container_labels.get(TOPIC_LABEL, "").strip()
    stdout = next((d for d in declarations if d.kind == "stdout"), None)
    if label:
        try:
            topic = topic_name(TagTemplate(label).render(info))
        except TemplateError as exc:
            raise RoutingError(f"invalid label '{TOPIC_LABEL}': {exc}") from None
    elif stdout is not None:
        topic = stdout.target  # validated as a legal topic name
    else:
        topic = topic_name((kafka.topic or settings.topic).render(info))
    return Route(brokers=brokers, topic=topic, key=key)


def file_route(route: Route, declaration: Declaration) -> Route:
    """A declared file log's route: the container's brokers and key, its own topic
    (the declaration's target, a legal topic name as validated)."""
    return Route(brokers=route.brokers, topic=declaration.target, key=route.key)
