"""The Prometheus alert rules are valid and every rule fires (and stays silent) as its unit tests say.

Runs the real `promtool` (Debian's `prometheus` package). It is not optional: without it these
tests fail and say how to install it, so the rules cannot rot unnoticed on a machine without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "staystream-alerts.yml"
RULE_TESTS = PROMETHEUS_DIR / "staystream-alerts.test.yml"


def promtool(*args: str) -> str:
    """Run promtool in the rules' directory; the output, once it exited 0."""
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail("promtool is not installed; run `sudo scripts/setup-system.sh` (Debian package prometheus)")
    result = subprocess.run([executable, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60,
                            check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} exited {result.returncode}:\n{output}"
    return output


def test_rules_are_valid() -> None:
    output = promtool("check", "rules", RULES.name)
    assert f"SUCCESS: {len(alert_names())} rules found" in output, output


def test_rules_behave_as_their_unit_tests_say() -> None:
    promtool("test", "rules", RULE_TESTS.name)


def test_example_prometheus_config_is_valid() -> None:
    promtool("check", "config", "prometheus.yml")


def test_every_rule_has_unit_tests_firing_and_silent() -> None:
    """Each alert appears in the tests at least once with expected alerts and once with none."""
    text = RULE_TESTS.read_text()
    cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", text)
    firing = {name for name, empty in cases if not empty}
    silent = {name for name, empty in cases if empty}
    assert alert_names() - firing == set(), "rules never shown firing"
    assert alert_names() - silent == set(), "rules never shown silent"


def test_every_rule_has_severity_summary_and_runbook() -> None:
    for block in re.split(r"\n\s+- alert: ", RULES.read_text())[1:]:
        name = block.split("\n", 1)[0]
        assert re.search(r"severity: (critical|warning)\n", block), f"{name}: severity critical or warning"
        assert re.search(r"summary: \S", block), f"{name}: no summary"
        assert re.search(r"runbook: \S", block), f"{name}: no runbook"


def alert_names() -> set[str]:
    return set(re.findall(r"- alert: (\w+)", RULES.read_text()))


def test_every_rule_is_explained_in_the_operations_guide() -> None:
    sections = set(re.findall(r"^### (\w+)$", (PROMETHEUS_DIR.parents[1] / "docs" / "operations.md").read_text(),
                              re.MULTILINE))
    assert alert_names() - sections == set(), "add a section to docs/operations.md"
    assert sections - alert_names() == set(), "docs/operations.md explains alerts that do not exist"
