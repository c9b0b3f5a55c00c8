"""Snapshot files: two slots overwritten in place, complete or ignored, the newest wins."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from staystream.durable import snapshot


def chunks(seq: int, rows: int) -> list[snapshot.Chunk]:
    """Two arrays, the second in three chunks, values that tell snapshots apart."""
    big = np.arange(rows * 4, dtype=np.int64).reshape(rows, 4) + seq
    return [("base_page", (1,), np.array([seq])), *(("big", big.shape, part) for part in np.array_split(big, 3))]


def write(directory: Path, seq: int, rows: int, complete: bool = True) -> None:
    files = snapshot.Files(directory, seq, bytes_per_second=1e12)
    try:
        for name, piece in snapshot.npy_pieces(iter(chunks(seq, rows))):
            files.write(name, piece)
        if complete:
            files.complete()
    finally:
        files.close()


def test_snapshots_alternate_slots_and_the_newest_loads(tmp_path: Path) -> None:
    assert snapshot.load_latest(tmp_path) is None
    for seq, rows in ((5, 100), (9, 300), (14, 50)):  # the last one shorter than what it overwrites
        write(tmp_path, seq, rows)
        found = snapshot.load_latest(tmp_path)
        assert found is not None
        assert found[0] == seq
        assert found[1]["base_page"].tolist() == [seq]
        assert np.array_equal(found[1]["big"], np.arange(rows * 4).reshape(rows, 4) + seq)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_an_interrupted_snapshot_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    write(tmp_path, 5, 100)
    write(tmp_path, 9, 200)
    write(tmp_path, 12, 300, complete=False)  # overwrote the slot of seq 5, never completed
    seq, arrays = snapshot.load_latest(tmp_path)  # type: ignore[misc]
    assert seq == 9
    assert np.array_equal(arrays["big"], np.arange(800).reshape(200, 4) + 9)


def test_a_snapshot_of_the_earlier_layout_loads_and_is_replaced(tmp_path: Path) -> None:
    legacy = tmp_path / "7"
    legacy.mkdir()
    np.save(legacy / "big.npy", np.ones((3, 4), np.int64))
    assert snapshot.load_latest(tmp_path)[0] == 7  # type: ignore[index]
    write(tmp_path, 8, 10)
    assert snapshot.load_latest(tmp_path)[0] == 8  # type: ignore[index]
    assert not legacy.exists()
