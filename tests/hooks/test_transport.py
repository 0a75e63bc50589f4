"""The body decoder under its cap: gzip members, raw deflate, declared lengths, bad encodings."""

from __future__ import annotations

import gzip
import zlib

import pytest

from airflow_provider_phenv.hooks.transport import BodyDecoder, BodyTooLarge, ResponseProblem


def _feed(decoder: BodyDecoder, data: bytes, step: int = 7) -> bytes:
    for start in range(0, len(data), step):
        decoder.feed(data[start : start + step])
    return decoder.finish()


def test_identity_body_is_kept_as_is():
    assert _feed(BodyDecoder(None, 100), b'{"a": 1}') == b'{"a": 1}'


def test_gzip_in_small_chunks_and_several_members():
    data = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    assert _feed(BodyDecoder("gzip", 100), data) == b'{"a": 1}'


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_wrapped_or_raw(wbits):
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    data = compressor.compress(b"[1, 2, 3]") + compressor.flush()
    assert _feed(BodyDecoder("deflate", 100), data) == b"[1, 2, 3]"


def test_the_cap_is_on_the_decoded_size():
    data = gzip.compress(b"0" * 10_000)
    assert len(data) < 100
    with pytest.raises(BodyTooLarge, match="max_body_bytes=1,000"):
        _feed(BodyDecoder("gzip", 1000), data)


def test_a_declared_length_over_the_cap_fails_before_reading():
    with pytest.raises(BodyTooLarge, match="Content-Length 1,001"):
        BodyDecoder(None, 1000, "1001")


def test_a_body_exactly_at_the_cap_is_read():
    assert len(_feed(BodyDecoder("gzip", 1000), gzip.compress(b"x" * 1000))) == 1000


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br", "compress"])
def test_encodings_not_asked_for_are_refused(encoding):
    with pytest.raises(ResponseProblem, match="only gzip, deflate were asked for"):
        BodyDecoder(encoding, 100)


def test_a_corrupt_gzip_body_is_a_problem_not_a_crash():
    with pytest.raises(ResponseProblem, match="cannot be decoded"):
        _feed(BodyDecoder("gzip", 100), b"\x1f\x8b\x08\x00garbage-garbage")
