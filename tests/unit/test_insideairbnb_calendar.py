"""The Inside Airbnb calendar read two ways: as columns (pyarrow, a file of one row a line) and
row by row (the csv module, any other file). Both must give the same items, line numbers included."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest

from staystream.adapters import Input, Options, RateRuns, insideairbnb, one_by_one

HEADER = "listing_id,date,available,price,adjusted_price,minimum_nights,maximum_nights\n"


def calendar_rows() -> list[str]:
    """Two listings: runs, a rejected row repeated over several nights, a run past the 550-night cap."""
    rows = []
    start = dt.date(2024, 1, 1)
    for listing, nights in (("7", 700), ("8", 40)):
        for i in range(nights):
            available = "maybe" if listing == "8" and 10 <= i < 15 else "t"
            price = "$100.00" if listing == "7" or i % 20 < 12 else "$1,250.00"
            rows.append(f'{listing},{start + dt.timedelta(days=i)},{available},"{price}","{price}",2,30\n')
    return rows


def items(text: str, block_bytes: int, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    monkeypatch.setattr(insideairbnb, "_BLOCK_BYTES", block_bytes)
    read = insideairbnb.read([Input("cal.csv", io.BytesIO(text.encode()))], Options("airbnb", "SGD"))
    return [(f"{type(i.event).__name__}: {i.event}", i.line, i.last_line, i.rows, i.note) for i in one_by_one(read)]


@pytest.mark.parametrize("block_bytes", [1_000, 7_000, 1 << 20])
def test_blocks_of_any_size_give_the_same_items(block_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEADER + "".join(calendar_rows())
    whole = items(text, 1 << 20, monkeypatch)
    assert items(text, block_bytes, monkeypatch) == whole
    rejected = [(line, last) for event, line, last, _, _ in whole if event.startswith("Rejected")]
    assert rejected == [(line, line) for line in range(712, 717)]  # each repeat on its own line
    assert max(rows for _, _, _, rows, _ in whole) == 550  # the cap splits a run


@pytest.mark.parametrize("block_bytes", [1_000, 1 << 20])
def test_a_file_the_columns_cannot_take_is_read_row_by_row(block_bytes: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A blank line deep in the file (after items went out) or a row on two lines: the same
    items as the csv module alone gives, past those already read."""
    rows = calendar_rows()
    plain = items(HEADER + "".join(rows), block_bytes, monkeypatch)
    blank = items(HEADER + "".join(rows[:600]) + "\n" + "".join(rows[600:]), block_bytes, monkeypatch)
    shifted = [(e, line + (line > 601), last + (last > 601), n, note) for e, line, last, n, note in plain]
    assert blank == shifted
    two_lines = rows[:]
    two_lines[650] = two_lines[650].replace(',2,30', ',"2\n",30')  # a minimum stay of "2\n" is 2
    split = items(HEADER + "".join(two_lines), block_bytes, monkeypatch)
    assert [event for event, *_ in split] == [event for event, *_ in plain]
    assert len(split) == len(plain)


class _Unseekable(io.RawIOBase):
    """A stream the columns cannot read again: the calendar goes row by row through the csv module."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("block_bytes", [1_000, 7_000, 1 << 20])
def test_runs_found_as_columns_are_the_csv_modules(block_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """No row rejected, so every block's runs are found for whole columns: a price written two
    ways ($100 and $100.00: one run, its first night's text), a placeholder price, empty prices
    and minimum stays (the listings file's), runs past the cap and across blocks give the
    events, lines and notes the csv module's rows give."""
    rows = [row.replace("maybe", "f") for row in calendar_rows()]
    for i in range(300, 320):
        rows[i] = rows[i].replace('"$100.00"', '"$100"', 1)
    rows[716:719] = [row.replace('"$1,250.00"', '"$12,500.00"', 1) for row in rows[716:719]]
    rows[400:410] = [row.replace('"$100.00","$100.00"', '"",""') for row in rows[400:410]]
    rows[420:426] = [row.replace(",2,30", ",,30") for row in rows[420:426]]
    rows[730:734] = [row.replace('"$1,250.00","$1,250.00",2', '"","",') for row in rows[730:734]]
    listings = ("id,name,latitude,longitude,room_type,property_type,accommodates,price,minimum_nights,last_scraped\n"
                "7,Flat,1.3,103.8,Private room,Room,2,$77.00,3,2023-12-30\n"
                '8,Loft,1.3,103.8,Private room,Room,2,"$1,100.00",4,2023-12-31\n')
    text = HEADER + "".join(rows)
    options = Options("airbnb", "SGD", placeholder_price=Decimal(10_000))
    stream = io.BufferedReader(_Unseekable(text.encode()))
    inputs = [Input("l.csv", io.BytesIO(listings.encode())), Input("cal.csv", stream)]  # type: ignore[arg-type]  # a binary stream
    by_rows = [(repr(i.event), i.line, i.last_line, i.rows, i.note) for i in insideairbnb.read(inputs, options)]
    assert sum("Decimal('77.00')" in event for event, *_ in by_rows) == 1
    assert sum("min_nights=3" in event for event, *_ in by_rows) == 1
    assert sum("Decimal('1100.00')" in event for event, *_ in by_rows) == 1
    monkeypatch.setattr(insideairbnb, "_BLOCK_BYTES", block_bytes)
    inputs = [Input("l.csv", io.BytesIO(listings.encode())), Input("cal.csv", io.BytesIO(text.encode()))]
    read = insideairbnb.read(inputs, options)
    as_columns = list(read)
    assert any(isinstance(item.event, RateRuns) for item in as_columns)
    assert [(repr(i.event), i.line, i.last_line, i.rows, i.note) for i in one_by_one(as_columns)] == by_rows
    assert sum(note is not None for *_, note in by_rows) == 1
