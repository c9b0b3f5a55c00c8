"""The Grafana dashboard and the alert rules query metrics that exist (or are listed to be wired).

A metric name is known when the code defines it (a `"staystream_..."` literal under src/), when
docs/operations.md lists it under "Metrics to wire", or (for the dashboard) when the alert rules
use it; a typo in a panel or rule would otherwise show an empty graph or an alert that never fires.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "staystream.json"
RULES = ROOT / "deploy" / "prometheus" / "staystream-alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
BUILT_IN = {"up", "ALERTS"}  # series Prometheus makes itself
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}


def metric_names(expression: str) -> set[str]:
    names = set(re.findall(r"\b(staystream_[a-z0-9_]+)\b", expression))
    return names | {name for name in BUILT_IN if re.search(rf"\b{name}\b(?!\s*=)", expression)}


def defined_in_code() -> set[str]:
    names = set()
    for path in (ROOT / "src" / "staystream").rglob("*.py"):
        names |= set(re.findall(r"\"(staystream_[a-z0-9_]+)\"", path.read_text()))
    return names


def listed_to_wire() -> set[str]:
    """The metric names in the table of docs/operations.md's "Metrics to wire" section."""
    section = OPERATIONS.read_text().split("## Metrics to wire", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(staystream_[a-z0-9_]+)`", section, re.MULTILINE))


def known(name: str, names: set[str]) -> bool:
    return name in names or any(name.endswith(suffix) and name[: -len(suffix)] in names
                                for suffix in HISTOGRAM_SUFFIXES)


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every query: panel targets, nested row panels, annotations."""
    dashboard = json.loads(DASHBOARD.read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel '{panel['title']}' {target['refId']}", target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        yield f"annotation '{annotation['name']}'", annotation["expr"]


def test_dashboard_queries_only_known_metrics() -> None:
    names = defined_in_code() | listed_to_wire() | metric_names(RULES.read_text()) | BUILT_IN
    expressions = list(dashboard_expressions())
    assert len(expressions) > 20
    unknown = {(where, name) for where, expression in expressions
               for name in metric_names(expression) if not known(name, names)}
    assert unknown == set()


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query (Grafana variables filled in) checked by promtool as a recording rule."""
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail("promtool is not installed; run `sudo scripts/setup-system.sh` (Debian package prometheus)")
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for number, (_, expression) in enumerate(dashboard_expressions()):
        for variable, value in GRAFANA_VARIABLES.items():
            expression = expression.replace(variable, value)
        rules += [f"      - record: dashboard:query_{number}", f"        expr: {json.dumps(expression)}"]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text("\n".join(rules) + "\n")
    result = subprocess.run([executable, "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_use_metrics_the_code_defines_or_that_are_listed_to_wire() -> None:
    defined, listed = defined_in_code(), listed_to_wire()
    missing = {name for name in metric_names(RULES.read_text()) - BUILT_IN
               if not known(name, defined | listed)}
    assert missing == set(), "add them to the 'Metrics to wire' table of docs/operations.md"
    wired = {name for name in listed if known(name, defined)}
    assert wired == set(), "now defined in src/: remove them from 'Metrics to wire' in docs/operations.md"
