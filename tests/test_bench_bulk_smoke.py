"""The bulk-beside-live benchmark runs end to end on a tiny import. No timing is asserted: the
bar is judged by `python -m benchmarks.run bulk`, not by tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bulk_beside_live_smoke(tmp_path: Path) -> None:
    output = tmp_path / "bulk.json"
    command = [
        sys.executable, "-m", "benchmarks.bulk_live", "--repeat", "1", "--listings", "1000", "--copies", "1",
        "--calendar-rows", "50000", "--sizes", "10", "--baseline-seconds", "1", "--calibrate-seconds", "1",
        "--output", str(output),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(output.read_text())
    alone = result["import_alone"]["runs"][0]
    assert alone["nights_accepted"] == alone["night_updates"] == 50_000  # every imported night was applied
    [run] = result["live 10-event requests"]["runs"]
    assert run["import"]["nights_accepted"] == 50_000
    assert run["import"]["rejected"] == 0
    for window in ("baseline", "during_import"):
        assert run[window]["requests"] > 0
        assert run[window]["errors"] == 0
    assert not run["import_outlasted_live_load"]
    assert run["bar_judged"] is False  # 50,000 nights: a smoke run, not the bar's 5 million
