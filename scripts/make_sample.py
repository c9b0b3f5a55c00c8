"""Build the sample city shipped for `staystream serve --seed-sample` from Inside Airbnb Singapore.

    python scripts/make_sample.py [--from tests/data/singapore] [--to src/staystream/data]

Writes `sample-singapore-listings.csv.gz` and `sample-singapore-calendar.csv.gz`: the same
format as Inside Airbnb's files (so the Inside Airbnb adapter reads them), with only the columns
the adapter uses and a subset of listings:

- every listing a short stay can book in its first 60 nights (a minimum stay of 3 nights or
  less on some night, and 10 or more open nights): what a newcomer's first search finds;
- plus `--others` listings drawn with a fixed seed from the rest (mostly Singapore's 3-month
  minimum stays), so a search also shows what the `min_nights` rule leaves out.

The output is byte-for-byte reproducible (fixed seed, gzip without a timestamp). Data from
Inside Airbnb (insideairbnb.com), CC BY 4.0; see src/staystream/data/README.md.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
from pathlib import Path

LISTING_COLUMNS = [
    "id", "listing_url", "last_scraped", "name", "neighbourhood_cleansed", "latitude", "longitude",
    "property_type", "room_type", "accommodates", "bedrooms", "price", "minimum_nights",
    "calendar_last_scraped",
]
CALENDAR_COLUMNS = ["listing_id", "date", "available", "price", "minimum_nights"]
FIRST_NIGHTS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--from", dest="source", type=Path, default=Path(__file__).resolve().parents[1] / "tests" / "data" / "singapore"
    )
    parser.add_argument("--to", dest="target", type=Path,
                        default=Path(__file__).resolve().parent.parent / "src/staystream/data")
    parser.add_argument("--others", type=int, default=200, help="long-stay listings to add")
    args = parser.parse_args()

    short_stay, everyone = _short_stay(args.source / "calendar.csv.gz")
    others = sorted(set(everyone) - short_stay)
    chosen = short_stay | set(random.Random(20230923).sample(others, min(args.others, len(others))))

    with _reader(args.source / "listings.csv.gz") as rows, _writer(
            args.target / "sample-singapore-listings.csv.gz") as out:
        out.writerow(LISTING_COLUMNS)
        header = next(rows)
        index = [header.index(name) for name in LISTING_COLUMNS]
        listed = 0
        for row in rows:
            if row[0] in chosen:
                out.writerow([row[i] for i in index])
                listed += 1
    with _reader(args.source / "calendar.csv.gz") as rows, _writer(
            args.target / "sample-singapore-calendar.csv.gz") as out:
        out.writerow(CALENDAR_COLUMNS)
        header = next(rows)
        index = [header.index(name) for name in CALENDAR_COLUMNS]
        nights = 0
        for row in rows:
            if row[0] in chosen:
                out.writerow([row[i] for i in index])
                nights += 1
    print(f"{listed} listings ({len(short_stay)} bookable for short stays), {nights} nights -> {args.target}")


def _short_stay(calendar: Path) -> tuple[set[str], list[str]]:
    """Listings bookable for a short stay in their first nights, and every listing in order."""
    stats: dict[str, list[int]] = {}  # id -> [nights seen, open nights, smallest minimum stay]
    with _reader(calendar) as rows:
        next(rows)
        for listing_id, _, available, *_rest, minimum, _maximum in rows:
            seen = stats.setdefault(listing_id, [0, 0, 10**9])
            if seen[0] >= FIRST_NIGHTS:
                continue
            seen[0] += 1
            seen[1] += available == "t"
            seen[2] = min(seen[2], int(minimum))
    short = {i for i, (_, open_nights, minimum) in stats.items() if minimum <= 3 and open_nights >= 10}
    return short, list(stats)


class _reader:
    def __init__(self, path: Path) -> None:
        self.file = gzip.open(path, "rt", encoding="utf-8", newline="")  # noqa: SIM115  closed by __exit__

    def __enter__(self):  # type: ignore[no-untyped-def]
        return csv.reader(self.file)

    def __exit__(self, *exc: object) -> None:
        self.file.close()


class _writer:
    """A CSV writer into a gzip file without a timestamp: the same input gives the same bytes."""

    def __init__(self, path: Path) -> None:
        self.raw = open(path, "wb")  # noqa: SIM115  closed by __exit__
        self.gzip = gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, compresslevel=9, mtime=0)
        self.text = io.TextIOWrapper(self.gzip, encoding="utf-8", newline="")

    def __enter__(self):  # type: ignore[no-untyped-def]
        return csv.writer(self.text, lineterminator="\n")

    def __exit__(self, *exc: object) -> None:
        self.text.close()
        self.raw.close()


if __name__ == "__main__":
    main()
