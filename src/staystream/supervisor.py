"""`staystream serve`: the supervisor that runs one writer and N HTTP workers on one port.

The supervisor binds the socket, starts the writer, waits until it has recovered the store,
then forks the workers that share the socket. Children die with the supervisor (even on
`kill -9`, through PR_SET_PDEATHSIG), a dead worker is replaced, and a dead writer stops the
service: no worker can acknowledge anything without it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import threading
import time
from multiprocessing.context import ForkContext
from multiprocessing.process import BaseProcess
from pathlib import Path

from staystream.config import Config
from staystream.lifecycle import die_with_parent, set_process_name
from staystream.logs import configure
from staystream.paths import CONTROL_FILE, METRICS_DIR, writer_socket
from staystream.watches.backend import evaluated_here

log = logging.getLogger("staystream.server")
WATCHER_NICENESS = 5

def shared_memory_path() -> Path:
    """A fresh directory on tmpfs for this server; leftovers of dead servers are removed."""
    root = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")
    for stale in root.glob("staystream-*"):
        pid = stale.name.removeprefix("staystream-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = root / f"staystream-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

def _writer_main(config: Config, shm_path: Path, supervisor: int) -> None:
    die_with_parent(supervisor)
    configure(config.log_level)
    from staystream.writer.process import run

    run(config, shm_path)

def _watcher_main(config: Config, shm_path: Path, supervisor: int, shard: int) -> None:
    die_with_parent(supervisor)
    set_process_name("ss-watcher")  # `ps`/`top` and the tests tell it apart
    # Writes come first: when the cores are busy, the watcher yields to the writer and workers (a
    # slower alert rather than a slower acknowledgment; docs/benchmarks.md "Watches").
    os.nice(WATCHER_NICENESS)
    configure(config.log_level)
    from staystream.watches.watcher import run

    run(config, shm_path, shard)

def _worker_main(config: Config, shm_path: Path, listener: socket.socket, supervisor: int) -> None:
    die_with_parent(supervisor)
    configure(config.log_level)
    import uvicorn

    from staystream.api.app import create_app, end_event_streams
    from staystream.api.connections import uvicorn_settings

    app = create_app(config, shm_path)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            end_event_streams(app)  # first: uvicorn then waits for every open response to end
            await super().shutdown(sockets)

    server = Server(
        uvicorn.Config(
            app, loop="uvloop", lifespan="on",
            access_log=False, log_config=None, log_level="warning",
            **uvicorn_settings(config.header_timeout, config.keep_alive_timeout, config.max_connections_per_client,
                               config.max_connections),
        )
    )
    server.run(sockets=[listener])

def bind(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per worker on the same port (SO_REUSEPORT).

    The kernel spreads new connections over the sockets; with one shared socket, whichever
    worker woke first accepted every pending connection and kept it (keep-alive), so one worker
    queued while the other idled."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # First a plain bind: SO_REUSEPORT alone would let a second server join a port in use and
    # silently take half of another store's traffic.
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        port = probe.getsockname()[1]
    listeners = []
    for _ in range(count):
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            listener.bind((host, port))
        except OSError as exc:
            raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        listener.listen(4096)
        listener.set_inheritable(True)
        port = listener.getsockname()[1]  # port 0: the others join the port the first one got
        listeners.append(listener)
    return listeners


def serve(config: Config) -> int:
    configure(config.log_level)
    if config.sources_file is not None:  # checked before anything starts: a bad value stops here
        from staystream.adapters.source_settings import SettingsError, load

        try:
            load(config.sources_file)
        except SettingsError as exc:
            raise SystemExit(f"--sources-file: {exc}") from None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    shm_path = shared_memory_path()
    (shm_path / METRICS_DIR).mkdir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shm_path / METRICS_DIR)
    # Imported once here (after the metrics directory is set): a forked child, a replacement
    # worker above all, then starts serving in milliseconds instead of re-importing for seconds.
    import uvicorn  # noqa: F401  # for the forked children (above)

    from staystream.api import app as _app  # noqa: F401  # likewise
    listeners = bind(config.host, config.port, config.workers)
    host, port = listeners[0].getsockname()[:2]
    context = multiprocessing.get_context("fork")
    stopping = threading.Event()  # set by a signal handler, which runs in this (the main) thread

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    writer = context.Process(target=_writer_main, args=(config, shm_path, os.getpid()), name="writer")
    workers: list[BaseProcess] = []
    watchers: list[BaseProcess] = []
    writer.start()
    # Whatever happens from here (a failed start, an exception), the children are stopped: left
    # running, multiprocessing's exit handler would wait for them, and the supervisor with them.
    try:
        if not _wait_for_writer(writer, shm_path, stopping):
            if stopping.is_set():
                return 0
            log.error("the writer did not start; see its log above")
            return 1
        workers.extend(_start_worker(context, config, shm_path, listener) for listener in listeners)
        watchers.extend(_start_watcher(context, config, shm_path, shard)
                        for shard in range(config.watchers if evaluated_here(config) else 0))
        log.info("listening", extra={"url": f"http://{host}:{port}", "workers": config.workers,
                                     "data_dir": str(config.data_dir)})
        _announce(f"staystream listening on http://{host}:{port}\n"
                  f"search page http://{host}:{port}/  operations http://{host}:{port}/ops\n")
        if config.tokens is None:
            log.warning("writes need no credential: give --tokens FILE to require one")
        if config.seed_sample:  # the sample city, posted over HTTP by a child (importer.seed_sample)
            from staystream.importer.command import seed_sample

            seed = context.Process(target=seed_sample, args=(config, host, port, os.getpid()), name="seed", daemon=True)
            seed.start()
        return _supervise(context, config, shm_path, listeners, stopping, writer, workers, watchers)
    finally:
        _stop_children(writer, workers, watchers)
        for listener in listeners:
            listener.close()
        shutil.rmtree(shm_path, ignore_errors=True)
        log.info("stopped")


def _announce(text: str) -> None:
    """The listening lines on stdout in one write. Tools read the URL off the first line and may
    close the pipe at once: a reader gone is no error. (`print` wrote the text and its newline
    in two writes under PYTHONUNBUFFERED; the second raised BrokenPipeError, and an import's
    private server then waited 300 s on children nobody had stopped.)"""
    try:
        sys.stdout.flush()
        os.write(sys.stdout.fileno(), text.encode())
    except (BrokenPipeError, ValueError, OSError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  nothing more to say to a closed pipe


def _supervise(context: ForkContext, config: Config, shm_path: Path, listeners: list[socket.socket],
               stopping: threading.Event, writer: BaseProcess, workers: list[BaseProcess],
               watchers: list[BaseProcess]) -> int:
    """Replace dead workers and watchers until a stop is asked (0) or the writer dies (1)."""
    while not stopping.is_set():
        time.sleep(0.2)
        if stopping.is_set():  # a Ctrl-C signals the whole process group: writer and workers stop with us
            break
        if not writer.is_alive():
            log.error("the writer exited; stopping the service", extra={"exitcode": writer.exitcode})
            return 1
        for i, worker in enumerate(workers):
            if not worker.is_alive():
                log.warning("worker exited; starting another", extra={"exitcode": worker.exitcode})
                workers[i] = _start_worker(context, config, shm_path, listeners[i])
        for shard, watcher in enumerate(watchers):
            if not watcher.is_alive():  # it recovers by itself: events are what differs from its stored state
                log.warning("watcher exited; starting another", extra={"exitcode": watcher.exitcode})
                watchers[shard] = _start_watcher(context, config, shm_path, shard)
    return 0


def _stop_children(writer: BaseProcess, workers: list[BaseProcess], watchers: list[BaseProcess]) -> None:
    """Watchers and workers first (a worker ends its event streams and answers its writes in
    flight), then the writer, which drains, snapshots and exits."""
    for child in (*watchers, *workers):
        child.terminate()
    for child in (*watchers, *workers):
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(5)
    if writer.is_alive():
        writer.terminate()
        writer.join(120)
        if writer.is_alive():
            writer.kill()

def _start_worker(context: ForkContext, config: Config, shm_path: Path, listener: socket.socket) -> BaseProcess:
    worker = context.Process(target=_worker_main, args=(config, shm_path, listener, os.getpid()), name="worker")
    worker.start()
    return worker

def _start_watcher(context: ForkContext, config: Config, shm_path: Path, shard: int) -> BaseProcess:
    watcher = context.Process(target=_watcher_main, args=(config, shm_path, os.getpid(), shard), name="watcher")
    watcher.start()
    return watcher

def _wait_for_writer(writer: BaseProcess, shm_path: Path, stopping: threading.Event) -> bool:
    """True once the writer has recovered the store; False if it died or a stop was asked."""
    control = shm_path / CONTROL_FILE
    while writer.is_alive() and not stopping.is_set():
        if control.exists() and writer_socket(shm_path).exists():
            from staystream.memory.layout import SHARED_ARRAYS
            from staystream.memory.shm import Counter, SharedArrays

            shared = SharedArrays(shm_path, SHARED_ARRAYS, create=False)
            if shared.counters[Counter.READY] == 1:
                return True
        time.sleep(0.05)
    return False
