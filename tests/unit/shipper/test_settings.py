from pathlib import Path

import pytest
from pylog.config import KafkaSettings, OptionError, Settings
from pylog.shipper.producer import cluster_key, producer_kwargs


def test_defaults_are_local_only() -> None:
    k = Settings.from_env({}).kafka
    assert k.brokers == () and k.idempotence and k.acks == "all" and k.compression == "lz4"


def test_full_env(tmp_path: Path) -> None:
    ca = Path("/etc/ssl/certs/ca-certificates.crt")
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    k = KafkaSettings.from_env(
        {
            "KAFKA_BROKERS": "k1:9092,k2:9093",
            "KAFKA_CLIENT_ID": "me",
            "KAFKA_COMPRESSION": "ZSTD",
            "KAFKA_LINGER_MS": "50",
            "KAFKA_BATCH_SIZE": "1m",
            "KAFKA_TOPIC": "logs-{{.Name}}",
            "KAFKA_TLS_CA": str(ca),
            "KAFKA_SASL_MECHANISM": "scram-sha-512",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD_FILE": str(pw),
        }
    )
    assert k.brokers == ("k1:9092", "k2:9093") and k.client_id == "me"
    assert (k.compression, k.linger_ms, k.batch_size) == ("zstd", 50, 1 << 20)
    assert k.tls and k.tls_ca == ca and k.sasl_mechanism == "SCRAM-SHA-512"
    assert k.sasl_password == "from-file"
    assert "from-file" not in repr(k)
    kw = producer_kwargs(cluster_key(k, ("other:1",)))
    assert kw["security_protocol"] == "SASL_SSL" and kw["bootstrap_servers"] == ["other:1"]
    # pylog numbers its own requests (pipeline.py): aiokafka's sender is never idempotent.
    assert kw["enable_idempotence"] is False and kw["compression_type"] == "zstd"
    assert k.idempotence


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"KAFKA_BROKERS": "k1"}, "KAFKA_BROKERS"),
        ({"KAFKA_COMPRESSION": "brotli"}, "KAFKA_COMPRESSION"),
        ({"KAFKA_ACKS": "1"}, "KAFKA_IDEMPOTENCE"),
        ({"KAFKA_ACKS": "2", "KAFKA_IDEMPOTENCE": "false"}, "KAFKA_ACKS"),
        ({"KAFKA_LINGER_MS": "-1"}, "KAFKA_LINGER_MS"),
        ({"KAFKA_BATCH_SIZE": "huge"}, "KAFKA_BATCH_SIZE"),
        ({"KAFKA_TOPIC": "{{.Secret}}"}, "KAFKA_TOPIC"),
        ({"KAFKA_TLS_CA": "/nonexistent/ca.pem"}, "KAFKA_TLS_CA"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "hunter2"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_bad_settings_are_refused_without_secrets(env: dict[str, str], match: str) -> None:
    with pytest.raises(OptionError, match=match) as exc:
        KafkaSettings.from_env(env)
    assert "hunter2" not in str(exc.value)


def test_acks_one_without_idempotence() -> None:
    k = KafkaSettings.from_env({"KAFKA_ACKS": "1", "KAFKA_IDEMPOTENCE": "false"})
    assert producer_kwargs(k)["acks"] == 1


def test_tls_files_must_be_usable_pem(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(OptionError, match="KAFKA_TLS_CA"):
        KafkaSettings.from_env({"KAFKA_TLS_CA": str(bad)})
    with pytest.raises(OptionError, match="KAFKA_TLS_CERT"):
        KafkaSettings.from_env({"KAFKA_TLS_CERT": str(bad), "KAFKA_TLS_KEY": str(bad)})


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(OptionError, match="go together"):
        KafkaSettings.from_env({"KAFKA_TLS_CERT": str(cert)})
