"""Frames between workers and the writer: a 4-byte length, then one msgpack message."""

from __future__ import annotations

import asyncio
import struct

import msgspec

from staystream.events.types import WriteReply, WriteRequest

_HEADER = struct.Struct("<I")
_encoder = msgspec.msgpack.Encoder()
_requests = msgspec.msgpack.Decoder(WriteRequest)
_replies = msgspec.msgpack.Decoder(WriteReply)


async def _read(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(_HEADER.size)
    return await reader.readexactly(_HEADER.unpack(header)[0])


def _frame(message: msgspec.Struct) -> bytes:
    payload = _encoder.encode(message)
    return _HEADER.pack(len(payload)) + payload


async def read_request(reader: asyncio.StreamReader) -> WriteRequest:
    return _requests.decode(await _read(reader))


async def read_reply(reader: asyncio.StreamReader) -> WriteReply:
    return _replies.decode(await _read(reader))


def encode(message: WriteRequest | WriteReply) -> bytes:
    return _frame(message)


def reply(stream: asyncio.StreamWriter, message: WriteReply) -> None:
    """Send a reply unless its worker has gone (killed): under uvloop a write to a stream whose
    peer died raises, and that would stop the commit loop for every other worker too."""
    if not stream.is_closing():
        stream.write(encode(message))


class WriterUnavailable(ConnectionError):
    """The writer cannot be reached: the request is answered 503, nothing was acknowledged."""


class WriterClient:
    """A worker's connection to the writer; many requests in flight, matched by id."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.pending: dict[int, asyncio.Future[WriteReply]] = {}
        self.next_id = 0
        self.stream: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        reader, self.stream = await asyncio.open_unix_connection(self.socket_path)
        asyncio.create_task(self._read_replies(reader))

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                reply = await read_reply(reader)
                future = self.pending.pop(reply.id, None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.stream = None
        for future in self.pending.values():
            if not future.done():
                future.set_exception(WriterUnavailable("the writer process went away"))
        self.pending.clear()

    async def place(self, place_id: str) -> bytes | None:
        """`GET /v1/places/{place_id}` as the writer (the places' owner) answers it, None if
        unknown. Always this process's own writer, in scaled mode too (no stream involved)."""
        reply = await WriterClient.write(self, WriteRequest(0, [], b"", [], [], {}, place=place_id))
        return reply.body

    async def write(self, request: WriteRequest) -> WriteReply:
        if self.stream is None:
            raise WriterUnavailable("the writer process is not connected")
        self.next_id += 1
        request.id = self.next_id
        future: asyncio.Future[WriteReply] = asyncio.get_running_loop().create_future()
        self.pending[request.id] = future
        self.stream.write(encode(request))
        await self.stream.drain()
        return await future
