"""`EmulatorServer` (an emulator on a background thread) and `serve` (the blocking command).

Both bind to loopback unless the caller passes `allow_remote=True`: the emulator accepts
any credential listed in its fixture and must not be reachable from other machines by
accident.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType

from reconciler.emulator.core import EmulatorCore, FixtureSource
from reconciler.emulator.faults import FaultSettings
from reconciler.emulator.handler import EmulatorHTTPServer
from reconciler.errors import ConfigError

logger = logging.getLogger("reconciler.emulator")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


def check_host(host: str, *, allow_remote: bool) -> None:
    """Raise ConfigError when `host` is not a loopback address and remote use is not allowed."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"the emulator binds only to loopback addresses, not {host!r}",
            hint="use --host 127.0.0.1, or pass allow_remote=True if other machines must reach it",
        )


class EmulatorServer(EmulatorCore):
    """A Nylas v3 emulator serving HTTP on a background thread, usable as a context manager.

    `fixture` is a dict, a YAML file path or None. `faults` is a `FaultSettings` or a mapping of
    its fields. The admin methods inherited from `EmulatorCore` work before and after start.
    """

    def __init__(
        self,
        fixture: FixtureSource = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        faults: FaultSettings | Mapping[str, object] | None = None,
        allow_remote: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_host(host, allow_remote=allow_remote)
        super().__init__(fixture, faults, clock=clock)
        self.host = host
        self._requested_port = port
        self._httpd: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Bound port, or the requested one until `start` (0 means any free port)."""
        if self._httpd is None:
            return self._requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL clients use, such as `http://127.0.0.1:8787`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Bind the port, start serving on a daemon thread and return self."""
        if self._httpd is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._httpd = EmulatorHTTPServer((self.host, self._requested_port), self, family)
        except OSError as error:
            raise ConfigError(
                f"the emulator cannot listen on {self.host}:{self._requested_port}: "
                f"{error.strerror}",
                hint="choose another --port, or stop the process that uses it",
            ) from error
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"nylas-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("Nylas emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port. Safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        logger.info("Nylas emulator on %s:%s stopped", self.host, httpd.server_address[1])

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    fixture_path: FixtureSource = None,
    faults: FaultSettings | Mapping[str, object] | None = None,
    *,
    allow_remote: bool = False,
    on_ready: Callable[[EmulatorServer], None] | None = None,
) -> None:
    """Run an emulator until SIGTERM or SIGINT, then stop it cleanly.

    `on_ready` is called with the running server (for example to print its URL). Signal
    handlers are installed only when called from the main thread, and restored on return.
    """
    server = EmulatorServer(
        fixture_path, host=host, port=port, faults=faults, allow_remote=allow_remote
    )
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received signal %s; stopping the emulator", signal.Signals(signum).name)
        stop_requested.set()

    previous: dict[signal.Signals, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        server.start()
        if on_ready is not None:
            on_ready(server)
        # A timed wait lets the main thread run signal handlers promptly.
        while not stop_requested.wait(0.2):
            pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]  # a value signal.signal returned
