from aiokafka import codec
from aiokafka.record.default_records import DefaultRecordBatch
from pylog.shipper import compression
from pylog.shipper.recordbatch import RecordBatch
from pylog.shipper.schema import OutRecord

LZ4 = 3  # the batch attributes' code for LZ4


def _batch(n: int) -> bytes:
    b = RecordBatch(1 << 20, "lz4", 1 << 20)
    records: list[OutRecord] = [
        (b'{"v":1,"message":"line %d ' % i + b"x" * 80 + b'"}', [("stream", b"stdout")], i)
        for i in range(n)
    ]
    assert b.add(records, 0, b"k") == n
    return b.stamp(-1, -1, 0)


def test_batches_are_compressed_at_the_fast_level_and_read_back_whole() -> None:
    levels: list[int] = []
    real = codec.lz4_encode

    def spy(payload: bytes, level: int = 9) -> bytes:
        levels.append(level)
        out: bytes = real(payload, level)
        return out

    codec.lz4_encode = spy
    try:
        data = _batch(500)
    finally:
        codec.lz4_encode = real
    assert levels == [compression.LZ4_LEVEL]
    batch = DefaultRecordBatch(bytearray(data))
    assert batch.compression_type == LZ4
    records = list(batch)
    assert [r.timestamp for r in records] == list(range(500))
    assert records[499].value.startswith(b'{"v":1,"message":"line 499 ')
    assert records[0].headers == [("stream", b"stdout")]
    assert len(data) < 500 * 100 // 5  # log lines compress well at any level
