from aiokafka import codec
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from pylog.shipper import compression

LZ4 = 3  # aiokafka's compression type code


def _batch(n: int) -> bytes:
    b = BatchBuilder(1 << 20, LZ4, is_transactional=False)
    for i in range(n):
        value = b'{"v":1,"message":"line %d ' % i + b"x" * 80 + b'"}'
        assert b.append(timestamp=i, key=b"k", value=value, headers=[("stream", b"stdout")])
    data: bytes = bytes(b._build())
    return data


def test_batches_are_compressed_at_the_fast_level_and_read_back_whole() -> None:
    levels: list[int] = []
    real = codec.lz4_encode

    def spy(payload: bytes, level: int = 9) -> bytes:
        levels.append(level)
        out: bytes = real(payload, level)
        return out

    codec.lz4_encode = spy
    try:
        assert compression.use_fast_lz4() >= 1
        data = _batch(500)
    finally:
        codec.lz4_encode = real
        compression.use_fast_lz4()
    assert levels == [compression.LZ4_LEVEL]
    batch = DefaultRecordBatch(data)
    assert batch.compression_type == LZ4
    records = list(batch)
    assert [r.timestamp for r in records] == list(range(500))
    assert records[499].value.startswith(b'{"v":1,"message":"line 499 ')
    assert records[0].headers == [("stream", b"stdout")]
    assert len(data) < 500 * 100 // 5  # log lines compress well at any level
