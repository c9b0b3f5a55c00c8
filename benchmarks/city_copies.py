"""A bigger city made of copies of a real one, side by side: for imports long enough to time.

    python -m benchmarks.city_copies --copies 8 ../shared/data/singapore /tmp/singapore-x8

Writes `listings.csv.gz` and `calendar.csv.gz` of an Inside Airbnb city `copies` times over:
copy k's listing ids end in two digits of k (`71609` -> `7160903`), and its points are moved
east by k times the city's width plus a margin, so the copies are districts that never meet.
Why apart and not on top of each other: each copy keeps the real city's density, names and
calendars, so matching does per listing the work it does in the real city (the candidates
within 400 m are the same ones); copies a few metres apart would multiply the density by
`copies` and make every listing a candidate of its copies (the quadratic case of very large
properties, docs/places.md), a city that does not exist.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path

MARGIN_DEGREES = 0.05  # between two copies: ~5.5 km, far beyond the 400 m candidate radius


def copy_listings(source: Path, target: Path, copies: int) -> None:
    with gzip.open(source, "rt", newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        rows = list(reader)
    at_id, at_lon = header.index("id"), header.index("longitude")
    longitudes = [float(row[at_lon]) for row in rows]
    step = max(longitudes) - min(longitudes) + MARGIN_DEGREES
    with gzip.open(target, "wt", newline="", encoding="utf-8", compresslevel=1) as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for k in range(copies):
            for row, lon in zip(rows, longitudes, strict=True):
                moved = list(row)
                moved[at_id] = f"{row[at_id]}{k:02d}"
                moved[at_lon] = f"{lon + k * step:.6f}"
                writer.writerow(moved)


def copy_calendar(source: Path, target: Path, copies: int) -> None:
    """Copy after copy, so each listing's nights stay together (as the importer reads them)."""
    with gzip.open(source, "rb") as file:
        header, body = file.read().split(b"\n", 1)
    if not header.startswith(b"listing_id,"):
        raise SystemExit(f"{source}: the first column is not listing_id")
    lines = body.splitlines()
    with gzip.open(target, "wb", compresslevel=1) as out:
        out.write(header + b"\n")
        for k in range(copies):
            suffix = f"{k:02d},".encode()
            chunk = io.BytesIO()
            for line in lines:
                listing_id, rest = line.split(b",", 1)
                chunk.write(listing_id + suffix + rest + b"\n")
            out.write(chunk.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, required=True, help="how many times the city (at most 100)")
    parser.add_argument("city", type=Path, help="an Inside Airbnb folder: listings.csv.gz, calendar.csv.gz")
    parser.add_argument("target", type=Path, help="the folder to write (created)")
    args = parser.parse_args()
    if not 1 <= args.copies <= 100:
        parser.error(f"--copies: {args.copies} is not between 1 and 100 (two digits of the id)")
    args.target.mkdir(parents=True, exist_ok=True)
    copy_listings(args.city / "listings.csv.gz", args.target / "listings.csv.gz", args.copies)
    copy_calendar(args.city / "calendar.csv.gz", args.target / "calendar.csv.gz", args.copies)
    print(f"{args.target}: {args.city.name} x {args.copies}")


if __name__ == "__main__":
    main()
