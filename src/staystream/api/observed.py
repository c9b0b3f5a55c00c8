"""What a worker remembers for the operator's summary (`api/summary.py`): the Prometheus samples
it took on earlier calls (rates over a window) and its latest rejection example per label."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

WINDOW_SECONDS = 10.0
EXAMPLE_CHARS = 300
EXAMPLES_FLUSH_SECONDS = 1.0  # a new (source, reason) is written at once; a known one's new example at most this often

Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


@dataclass
class RejectionExamples:
    """This worker's latest example of each (source, reason), shared through a file of its own."""

    directory: Path
    examples: dict[str, str] = field(default_factory=dict)
    flushed_at: float = 0.0

    def record(self, examples: dict[tuple[str, str], str]) -> None:
        new_label = False
        for (source, reason), example in examples.items():
            label = f"{source}\x00{reason}"
            new_label = new_label or label not in self.examples
            self.examples[label] = example[:EXAMPLE_CHARS]
        if new_label or time.monotonic() - self.flushed_at > EXAMPLES_FLUSH_SECONDS:
            self.directory.mkdir(exist_ok=True)
            path = self.directory / f"{os.getpid()}.json"
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.examples))
            os.replace(temporary, path)
            self.flushed_at = time.monotonic()


@dataclass
class History:
    """The samples this worker took on earlier calls, for rates over the last window."""

    taken: deque[tuple[float, Samples]] = field(default_factory=deque)

    def baseline(self, now: float, samples: Samples) -> tuple[float, Samples] | None:
        """The oldest samples within the window (None on a first call), then remember these."""
        while self.taken and now - self.taken[0][0] > WINDOW_SECONDS:
            self.taken.popleft()
        found = self.taken[0] if self.taken and now - self.taken[0][0] >= 0.5 else None
        self.taken.append((now, samples))
        return found
