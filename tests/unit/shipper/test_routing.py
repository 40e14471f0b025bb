import pytest
from pylog.config import KafkaSettings, OptionError, parse_log_opts
from pylog.models import ContainerInfo
from pylog.shipper import RoutingError
from pylog.shipper.routing import resolve, topic_name
from pylog.tag import TagTemplate

CID = "f" * 64


def ci(labels: dict[str, str] | None = None, /, **config: str) -> ContainerInfo:
    return ContainerInfo(
        container_id=CID,
        container_name="/api",
        container_image_name="registry.local/team/api:2.1",
        container_labels=labels or {},
        config=dict(config),
    )


def route(info: ContainerInfo, settings: KafkaSettings):  # type: ignore[no-untyped-def]
    return resolve(info, parse_log_opts(info.config), settings)


PLUGIN = KafkaSettings(brokers=("k1:9092",), topic=TagTemplate("env-{{.Name}}"))


def test_no_brokers_anywhere_is_local_only() -> None:
    assert route(ci(), KafkaSettings()) is None
    assert route(ci({"pylog.topic": "x"}, **{"kafka-topic": "y"}), KafkaSettings()) is None


def test_brokers_from_log_opt_override_plugin() -> None:
    r = route(ci(**{"kafka-brokers": "a:1, [::1]:2"}), KafkaSettings())
    assert r is not None and r.brokers == ("a:1", "[::1]:2")
    r = route(ci(**{"kafka-brokers": "a:1"}), PLUGIN)
    assert r is not None and r.brokers == ("a:1",)
    r = route(ci(), PLUGIN)
    assert r is not None and r.brokers == ("k1:9092",)


def test_kafka_false_turns_shipping_off() -> None:
    assert route(ci(**{"kafka": "false"}), PLUGIN) is None


def test_topic_precedence_label_then_log_opt_then_plugin() -> None:
    labels = {"pylog.topic": 'label-{{index .ContainerLabels "team"}}', "team": "red"}
    r = route(ci(labels, **{"kafka-topic": "opt-{{.Name}}"}), PLUGIN)
    assert r is not None and r.topic == "label-red"
    r = route(ci({"team": "red"}, **{"kafka-topic": "opt-{{.Name}}"}), PLUGIN)
    assert r is not None and r.topic == "opt-api"
    r = route(ci(), PLUGIN)
    assert r is not None and r.topic == "env-api"
    r = route(ci(), KafkaSettings(brokers=("k:1",)))
    assert r is not None and r.topic == "docker-logs"


def test_key_defaults_to_container_id_and_can_be_templated() -> None:
    r = route(ci(), PLUGIN)
    assert r is not None and r.key == CID.encode()
    r = route(ci({"app": "x"}, **{"kafka-key": '{{index .ContainerLabels "app"}}'}), PLUGIN)
    assert r is not None and r.key == b"x"
    r = route(ci(**{"kafka-key": '{{index .ContainerLabels "none"}}'}), PLUGIN)
    assert r is not None and r.key is None


def test_topic_names_are_made_legal() -> None:
    assert topic_name("registry.local/team/api:2.1") == "registry.local_team_api_2.1"
    assert topic_name("") == "docker-logs" and topic_name("..") == "docker-logs"
    assert len(topic_name("x" * 400)) == 249
    r = route(ci(**{"kafka-topic": "{{.ImageName}}"}), PLUGIN)
    assert r is not None and r.topic == "registry.local_team_api_2.1"


def test_bad_label_template_is_a_routing_error() -> None:
    with pytest.raises(RoutingError, match=r"pylog\.topic"):
        route(ci({"pylog.topic": "{{.Nope}}"}), PLUGIN)


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"kafka-topic": "{{.Bad}}"}, "kafka-topic"),
        ({"kafka-key": "{{"}, "kafka-key"),
        ({"kafka-brokers": "nohost"}, "kafka-brokers"),
        ({"kafka-brokers": "h:99999"}, "kafka-brokers"),
        ({"kafka-brokers": ","}, "kafka-brokers"),
        ({"kafka-json": "maybe"}, "kafka-json"),
        ({"kafka": "yes"}, "'kafka'"),
        ({"kafka-multiline-pattern": "("}, "kafka-multiline-pattern"),
        ({"kafka-multiline-max-lines": "0"}, "kafka-multiline-max-lines"),
        ({"kafka-multiline-timeout": "soon"}, "kafka-multiline-timeout"),
        ({"kafka-password": "x"}, "unknown log opt 'kafka-password'"),
    ],
)
def test_kafka_log_opts_are_validated(opts: dict[str, str], match: str) -> None:
    with pytest.raises(OptionError, match=match):
        parse_log_opts(opts)


def test_kafka_log_opts_parsed() -> None:
    o = parse_log_opts(
        {
            "kafka-json": "true",
            "kafka-multiline-pattern": "^\\d",
            "kafka-multiline-max-lines": "10",
            "kafka-multiline-timeout": "500ms",
        }
    ).kafka
    assert o.json and o.multiline_pattern is not None and o.multiline_pattern.pattern == "^\\d"
    assert (o.multiline_max_lines, o.multiline_timeout) == (10, 0.5)
