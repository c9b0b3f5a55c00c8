"""`staystream serve` as the benchmark runs it: fresh data dir, free port, its processes measured."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


@dataclass
class Service:
    process: subprocess.Popen
    url: str
    port: int
    data_dir: Path
    log_path: Path
    workers: int
    started_seconds: float  # from exec to "listening" (the writer recovered, workers forked)
    ready_seconds: float  # from exec to the first 200 of /readyz

    @property
    def shm_path(self) -> Path:
        return Path("/dev/shm") / f"staystream-{self.process.pid}"

    def stop(self, timeout: float = 300) -> float:
        """SIGTERM (the writer drains and snapshots); returns the seconds it took."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return time.monotonic() - started

    def kill(self) -> None:
        """kill -9 of the supervisor; the writer and workers die with it (PR_SET_PDEATHSIG)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        time.sleep(0.5)

    # -- what the processes use --------------------------------------------------------

    def processes(self) -> dict[str, int]:
        """Role -> pid: the supervisor, the writer (its first child), the workers."""
        children = sorted(_children(self.process.pid), key=_start_time)
        roles = {"supervisor": self.process.pid}
        if children:
            roles["writer"] = children[0]
            for i, pid in enumerate(children[1:]):
                roles[f"worker{i + 1}"] = pid
        return roles

    def cpu_seconds(self) -> dict[str, float]:
        return {role: _cpu_seconds(pid) for role, pid in self.processes().items()}

    def memory(self) -> dict[str, object]:
        """Per process RSS and PSS splits, plus the tmpfs arrays, and totals that count each once.

        Shared-memory pages appear in the RSS of every process that maps them, and the forked
        processes share their interpreter and library pages. So `total_bytes` is the
        proportional set size (PSS) of each process without its shared-memory part, plus the
        tmpfs files once (mapped or not); `rss_total_bytes` is the pessimistic variant: anonymous
        + file RSS of each process, plus the tmpfs files once.
        """
        per_process = {role: _smaps_rollup(pid) for role, pid in self.processes().items()}
        shm = _tmpfs_bytes(self.shm_path)
        return {
            "processes": per_process,
            "shm_bytes": shm,
            "rss_sum_bytes": sum(p["rss"] for p in per_process.values()),
            "pss_sum_bytes": sum(p["pss"] for p in per_process.values()),
            "total_bytes": sum(p["pss_anon"] + p["pss_file"] for p in per_process.values()) + shm,
            "rss_total_bytes": sum(p["anon"] + p["file"] for p in per_process.values()) + shm,
            "disk_bytes": _tree_bytes(self.data_dir),
        }

    def connections(self) -> dict[str, int]:
        """Established TCP connections to the service's port held by each of its processes.

        The workers share one listening socket; which worker accepts a connection decides
        which one serves it for as long as it is kept alive."""
        inodes = _established_inodes(self.port)
        counts = {}
        for role, pid in self.processes().items():
            held = 0
            for fd in Path(f"/proc/{pid}/fd").glob("*"):
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    held += 1
            counts[role] = held
        return counts

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, `name{labels}` -> value."""
        text = _get(self.url + "/metrics", 30).decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples


def start(data_dir: Path, workers: int, *args: str, timeout: float = 600) -> Service:
    """Start `staystream serve` on a free port of 127.0.0.1 and wait until /readyz says 200."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "staystream", "serve", "--host", "127.0.0.1", "--port", "0",
             "--data-dir", str(data_dir), "--workers", str(workers), "--log-level", "warning", *args],
            stdout=subprocess.PIPE, stderr=log_file, env=env, preexec_fn=_die_with_parent,
        )
    assert process.stdout is not None
    deadline = began + timeout
    url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if "listening on" in line:
            url = line.strip().rsplit(" ", 1)[-1]
            break
        if not line and process.poll() is not None:
            break
    if url is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"staystream did not start; its log ({log_path}):\n{_tail(log_path)}")
    listening = time.monotonic() - began
    while time.monotonic() < deadline:
        try:
            if _status(url + "/readyz") == 200:
                break
        except OSError:
            pass
        time.sleep(0.02)
    else:
        process.kill()
        raise RuntimeError(f"staystream at {url} was not ready within {timeout} s; log:\n{_tail(log_path)}")
    ready = time.monotonic() - began
    port = int(url.rsplit(":", 1)[1])
    return Service(process, url, port, data_dir, log_path, workers, listening, ready)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark dies, so no server outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd on


def _start_time(pid: int) -> int:
    try:
        return int(_stat(pid)[19])
    except OSError:
        return 1 << 62


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


_FIELDS = re.compile(r"^(VmRSS|RssAnon|RssFile|RssShmem|Pss|Pss_Anon|Pss_File|Pss_Shmem):\s+(\d+) kB", re.M)
_NAMES = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem", "Pss": "pss",
          "Pss_Anon": "pss_anon", "Pss_File": "pss_file", "Pss_Shmem": "pss_shmem"}


def _smaps_rollup(pid: int) -> dict[str, int]:
    """RSS split from /proc/<pid>/status, PSS split from /proc/<pid>/smaps_rollup (bytes)."""
    values = dict.fromkeys(_NAMES.values(), 0)
    for name in ("status", "smaps_rollup"):
        try:
            text = Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            continue
        for field, kb in _FIELDS.findall(text):
            values[_NAMES[field]] = int(kb) * 1024
    return values


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def _tmpfs_bytes(path: Path) -> int:
    """Bytes the tmpfs holds for a directory (allocated blocks: sparse arrays count what is used)."""
    return sum(stat.st_blocks * 512 for stat in _stats(path))


def _tree_bytes(path: Path) -> int:
    return sum(stat.st_size for stat in _stats(path))


def _stats(path: Path) -> list[os.stat_result]:
    found = []
    for file in path.rglob("*") if path.exists() else ():
        try:
            if file.is_file():
                found.append(file.stat())
        except FileNotFoundError:
            pass  # an array grown or a snapshot renamed meanwhile
    return found


def cpu_delta(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Cores each server process used between two `cpu_seconds` readings."""
    return {role: round((after[role] - before.get(role, 0.0)) / seconds, 3) for role in after if seconds > 0}
