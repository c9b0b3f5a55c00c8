"""Inflating a `Content-Encoding: gzip` body in time linear in its size, within a size limit.

RFC 1952 allows several members (`cat a.gz b.gz`), and none may be lost. The obvious loop,
`data = inflater.unused_data` per member, copies the rest of the body once per member: a 16 MB
body of empty 20-byte members is 800,000 copies of megabytes (minutes of a blocked worker).
Here the input is fed a chunk at a time, so a member's leftover is at most one chunk, and the
number of members is bounded.

>>> import gzip
>>> gunzip(gzip.compress(b"a") + gzip.compress(b"b"), 100)
b'ab'
"""

from __future__ import annotations

import zlib

from staystream.api.responses import HTTPError

CHUNK = 16 * 1024  # input bytes fed at once: the most a member boundary can copy
MAX_MEMBERS = 1000  # concatenated batches are a handful; thousands are an attack


def gunzip(data: bytes, limit: int) -> bytes:
    """Every member of `data` inflated, at most `limit` bytes in all; else `HTTPError` 400
    (not gzip, truncated) or 413 (too large)."""
    view = memoryview(data)
    out: list[bytes] = []
    size = offset = members = 0
    pending = b""  # what the previous member left of its chunk: the next member's start
    inflater = None
    while pending or offset < len(data):
        if inflater is None:
            members += 1
            if members > MAX_MEMBERS:
                raise HTTPError(413, f"body has more than {MAX_MEMBERS} gzip members; expected a few")
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        if pending:
            piece: bytes | memoryview = pending
            pending = b""
        else:
            piece = view[offset:offset + CHUNK]
            offset += len(piece)
        try:
            inflated = inflater.decompress(piece, limit - size + 1)
        except zlib.error as exc:
            raise HTTPError(400, f"body is not valid gzip: {exc}") from None
        size += len(inflated)
        if size > limit or inflater.unconsumed_tail:
            raise HTTPError(413, f"body is over the limit of {limit} bytes once decompressed")
        out.append(inflated)
        if inflater.eof:
            pending, inflater = inflater.unused_data, None
    if inflater is not None or members == 0:
        raise HTTPError(400, "body is not valid gzip: the stream is truncated")
    return b"".join(out)
