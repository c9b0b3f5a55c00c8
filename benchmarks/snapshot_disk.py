"""How writing a snapshot disturbs the fsync every acknowledgment waits for.

`python -m benchmarks.snapshot_disk [--mb 512] [--repeat 2]`: a thread plays the WAL (100 KB
written in place and fdatasynced every 4 ms, as group commits at half load do) while the main
thread writes a snapshot-sized file the ways `snapshot.Files` could:

- `new+unlink`: a new file, then the previous snapshot deleted (the first design);
- `in-place`: the previous snapshot's file overwritten (the two-slot design);
- `in-place paced`: the same at `--paced-mb-s` (the default `--snapshot-write-mb-s`);
- `new unpaced`: a new file in 1 MB fdatasynced slices, as fast as the disk goes.

It prints the WAL fdatasync latency while each runs. Files go to `--dir` (default `var/`, the
disk the store uses); nothing else is measured, so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

SLICE = 1 << 20


class FakeWal(threading.Thread):
    """100 KB written in place and fdatasynced every 4 ms; records each fdatasync's latency."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        for offset in range(0, 64 << 20, SLICE):  # allocated up front, as a reused WAL is
            os.pwrite(self.fd, os.urandom(SLICE), offset)
        os.fsync(self.fd)
        self.latencies_ms: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        frame, offset = os.urandom(100_000), 0
        while not self.done.is_set():
            started = time.perf_counter()
            os.pwrite(self.fd, frame, offset)
            os.fdatasync(self.fd)
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            offset = (offset + len(frame)) % (60 << 20)
            time.sleep(0.004)
        os.close(self.fd)


def write_file(path: Path, size: int, flags: int, mb_per_s: float | None) -> None:
    data = os.urandom(16 << 20)
    fd = os.open(path, flags, 0o644)
    started, written = time.monotonic(), 0
    while written < size:
        for start in range(0, len(data), SLICE):
            written += os.write(fd, data[start : start + SLICE])
            os.fdatasync(fd)
            if mb_per_s:
                ahead = written / (mb_per_s * 1e6) - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    os.fsync(fd)
    os.close(fd)


def measure(directory: Path, way: str, size: int, paced: float) -> dict[str, float]:
    old, new = directory / "old.npy", directory / "new.npy"
    new.unlink(missing_ok=True)
    write_file(old, size, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, None)  # the previous snapshot
    wal = FakeWal(directory / "wal")
    wal.start()
    time.sleep(1.0)
    wal.latencies_ms.clear()
    started = time.monotonic()
    if way == "new+unlink":
        write_file(new, size, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, paced)
        old.unlink()
    elif way == "in-place":
        write_file(old, size, os.O_WRONLY, None)
    elif way == "in-place paced":
        write_file(old, size, os.O_WRONLY, paced)
    elif way == "new unpaced":
        write_file(new, size, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, None)
    seconds = time.monotonic() - started
    time.sleep(0.5)
    wal.done.set()
    wal.join()
    for path in (old, new, directory / "wal"):
        path.unlink(missing_ok=True)
    latencies = sorted(wal.latencies_ms)
    return {"seconds": seconds, "mb_per_s": size / 1e6 / seconds, "p50": latencies[len(latencies) // 2],
            "p99": latencies[int(0.99 * (len(latencies) - 1))], "max": latencies[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("var/snapshot-disk-bench"))
    parser.add_argument("--mb", type=int, default=512, help="size of the snapshot file")
    parser.add_argument("--paced-mb-s", type=float, default=256.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"WAL fdatasync latency (ms) while a {args.mb} MB snapshot is written; medians of {args.repeat}")
    for way in ("new+unlink", "in-place", "in-place paced", "new unpaced"):
        runs = [measure(args.dir, way, args.mb << 20, args.paced_mb_s) for _ in range(args.repeat)]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        maxima = ", ".join(f"{run['max']:.1f}" for run in runs)
        print(f"  {way:15} {median['mb_per_s']:6.0f} MB/s  p50 {median['p50']:5.2f}  p99 {median['p99']:6.2f}  "
              f"max {median['max']:6.1f} (runs: {maxima})")
    args.dir.rmdir()


if __name__ == "__main__":
    main()
