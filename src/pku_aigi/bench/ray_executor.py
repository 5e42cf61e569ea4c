"""The sweep's measurements as Ray tasks (``pku-aigi bench --executor ray``).

Each conventional-codec measurement is one Ray task of one CPU, running the same
:func:`~pku_aigi.bench.sweep.measure` as the local worker processes, pinned to one
thread in the same way, so rows are the same whichever executor made them; rows are
cached by the driver into ``--out`` as they come back, so a run interrupted on Ray
resumes locally or on Ray. Each image is put into Ray's object store once and released
when its last task is done; at most twice the cluster's CPUs (or ``--workers``) tasks
are in flight, longest first. A task that fails (an exception, a killed worker, a lost
node) is submitted once more; a second failure is reported for that measurement alone.

The cluster is the one at ``RAY_ADDRESS``, else a new local Ray started for the run
(stopped after it, every process it started ended by its process id). A local Ray and
a cluster at a loopback address stay on 127.0.0.1. Usage statistics and the dashboard
are off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
from collections import Counter, deque

from ..errors import CodecError, PkuAigiError
from .images import BenchImage
from .sweep import Failure, Task, default_workers, measure, pin_one_thread, worker_codec

logger = logging.getLogger(__name__)

INSTALL_HINT = "install it with: pip install 'pku-aigi[ray]'"
LOOPBACK = "127.0.0.1"
# Ray turns 127.0.0.1 into the host's network address (for other nodes to reach)
# unless it runs as a single machine, which this variable (read when ray is imported,
# and by every Ray process started from here) asks for.
_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray():
    """The ``ray`` module, or one clear error naming the extra to install."""
    try:
        import ray
    except ImportError as error:
        raise PkuAigiError(f"--executor ray needs Ray ({error}): {INSTALL_HINT}") from None
    return ray


def _host_port(address: str) -> tuple[str, str]:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    return host.strip("[]"), port


def is_loopback(address: str | None) -> bool:
    """True when ``address`` (``host:port``; None or "local": a new local Ray) is on
    this machine's loopback interface."""
    if not address or address == "local":
        return True
    if address == "auto":  # the last cluster started here, at Ray's own address
        return False
    host = _host_port(address)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """One clear error, at once, when nothing answers at ``address`` (Ray itself would
    retry for minutes)."""
    host, port = _host_port(address)
    if not host or not port.isdigit():
        raise PkuAigiError(f"RAY_ADDRESS {address!r}: expected HOST:PORT, e.g. 10.0.0.1:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise PkuAigiError(
            f"cannot reach Ray at {address} ({error.strerror or error}): start a cluster with "
            "`ray start --head` and set RAY_ADDRESS to its address, or unset RAY_ADDRESS "
            "for a local Ray"
        ) from None


# Worker side: pinned to one thread once; each codec's version checked once.
_PINNED: list[bool] = []
_CHECKED: set[tuple] = set()  # (codec, options, version)


def _measure_task(name: str, options: dict, version: str, rgb, quality, prompt, keep: bool):
    """One measurement in a Ray worker (one thread, the driver's codec version)."""
    if not _PINNED:
        pin_one_thread()
        _PINNED.append(True)
    key = (name, tuple(sorted(options.items())), version)
    codec = worker_codec(name, options)
    if key not in _CHECKED:
        if codec.version != version:
            raise CodecError(
                f"{name} on node {socket.gethostname()} is {codec.version!r}, not "
                f"{version!r} as where the benchmark runs: install the same encoders on "
                "every node"
            )
        _CHECKED.add(key)
    return measure(codec, rgb, quality, prompt, keep)


def _cause(error: BaseException) -> BaseException:
    """The codec's own exception inside a Ray task error; Ray's own errors as they are."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


class RayExecutor:
    """Runs a sweep's conventional-codec measurements as Ray tasks.

    ``address``: a Ray cluster (default ``RAY_ADDRESS``; unset: a local Ray started for
    the run with ``max_in_flight`` or all cores). ``max_in_flight``: at most that many
    measurements at once (default: every CPU of the cluster busy, as many queued).
    When this process is already connected to Ray (``ray.init`` by the caller), that
    connection is used and left open.
    """

    def __init__(self, address: str | None = None, max_in_flight: int | None = None):
        if max_in_flight is not None and max_in_flight < 1:
            raise PkuAigiError(f"--workers {max_in_flight}: expected 1 or more")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        if self.address == "local":
            self.address = None
        self.max_in_flight = max_in_flight
        self.workers = max_in_flight or default_workers()  # the cluster's CPUs once open
        self.retried: list[Failure] = []
        self._ray = None
        self._connected = False  # by this executor (not by the caller)
        self._single_machine: bool | None = None  # Ray's setting before open()
        self._where = f"Ray at {self.address}" if self.address else "a local Ray"
        self._owned_start: set[int] | None = None  # child pids before we started Ray
        self._environ: dict[str, str] | None = None  # os.environ before open()
        self._remote = None
        self._keep = False
        self._queue: deque[Task] = deque()
        self._pending: dict = {}  # ObjectRef -> (task, attempt)
        self._images: dict[int, object] = {}  # id(image) -> ObjectRef of its pixels
        self._left: Counter = Counter()  # id(image) -> its tasks not finished

    def describe(self) -> str:
        return self._where

    def check(self) -> None:
        """Fail at once, before any work, without Ray or without a cluster to reach."""
        import_ray()
        if self.address not in (None, "local", "auto"):
            check_reachable(self.address)

    def open(self) -> None:
        """Connect to the cluster (or start a local Ray); idempotent."""
        if self._ray is not None:
            return
        if self.address not in (None, "local", "auto"):
            check_reachable(self.address)
        ray = import_ray()
        loopback = is_loopback(self.address)
        self._environ = dict(os.environ)  # restored after: Ray adds variables of its own
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
        if loopback:  # for the Ray processes started from here, and for ray itself:
            os.environ[_SINGLE_MACHINE_ENV] = "0"
            from ray._private import ray_constants

            self._single_machine = ray_constants.ENABLE_RAY_CLUSTER
            ray_constants.ENABLE_RAY_CLUSTER = False
        self._ray = ray
        if not ray.is_initialized():
            self._init(ray, loopback)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        if cpus < 1:
            self.close()
            raise PkuAigiError(f"{self._where} has no CPU to run measurements on")
        self.workers = min(cpus, self.max_in_flight or cpus)
        self._where += f", {cpus} CPU{'s' * (cpus != 1)} on {nodes} node{'s' * (nodes != 1)}"
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_measure_task)

    def _init(self, ray, loopback: bool) -> None:
        options = {"log_to_driver": False, "logging_level": logging.WARNING}
        if loopback:
            options["_node_ip_address"] = LOOPBACK
        try:
            if self.address is None:
                import psutil

                self._owned_start = {p.pid for p in psutil.Process().children(recursive=True)}
                ray.init(
                    address="local",
                    num_cpus=self.max_in_flight or default_workers(),
                    include_dashboard=False,
                    **options,
                )
            else:
                ray.init(address=self.address, **options)
        except Exception as error:  # noqa: BLE001 - any of Ray's reasons, said in one line
            self._stop()
            reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
            raise PkuAigiError(
                f"cannot start or reach {self._where}: {reason or type(error).__name__}. "
                "Start a cluster with `ray start --head` and set RAY_ADDRESS to its address "
                "(with RAY_AUTH_MODE=token and its token when it uses token authentication), "
                "or unset RAY_ADDRESS for a local Ray"
            ) from None
        self._connected = True

    def start(self, images: list[BenchImage], tasks: list[Task], keep: bool) -> None:
        self.open()
        self._keep = keep
        self._queue.extend(tasks)  # longest first, as given
        for _, image, _, _ in tasks:
            self._left[id(image)] += 1
        self._top_up()

    @property
    def busy(self) -> bool:
        return bool(self._pending or self._queue)

    def _submit(self, task: Task, attempt: int) -> None:
        run, image, quality, base = task
        pixels = self._images.get(id(image))
        if pixels is None:
            pixels = self._images[id(image)] = self._ray.put(image.rgb)
        ref = self._remote.remote(
            run.name, run.options, base["codec_version"], pixels, quality, image.prompt, self._keep
        )
        self._pending[ref] = (task, attempt)

    def _top_up(self) -> None:
        limit = self.max_in_flight or 2 * self.workers
        while self._queue and len(self._pending) < limit:
            self._submit(self._queue.popleft(), attempt=1)

    def done(self, block: bool) -> list[tuple[Task, dict | None, BaseException | None]]:
        """Finished measurements; a first failure is submitted again, not returned."""
        self._top_up()
        if not self._pending:
            return []
        refs = list(self._pending)
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=None if block else 0)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        results = []
        for ref in ready:
            task, attempt = self._pending.pop(ref)
            try:
                result, error = self._ray.get(ref), None
            except Exception as raised:  # noqa: BLE001 - a failure of this measurement only
                result, error = None, _cause(raised)
            if error is not None and attempt == 1:
                run, image, quality, base = task
                message = f"{type(error).__name__}: {error}"
                self.retried.append(Failure(image.name, base["codec"], quality, message))
                logger.warning(
                    "%s %s q=%s failed on Ray, trying once more: %s",
                    base["codec"], image.name, quality, message,
                )  # fmt: skip
                try:
                    self._submit(task, attempt=2)
                    continue
                except Exception as raised:  # noqa: BLE001 - e.g. the cluster is gone
                    error = raised
            self._release(task[1])
            results.append((task, result, error))
        self._top_up()
        return results

    def _release(self, image: BenchImage) -> None:
        self._left[id(image)] -= 1
        if self._left[id(image)] <= 0:
            self._images.pop(id(image), None)  # the object store frees it

    def close(self) -> None:
        """Cancel what is left; stop the Ray this executor started, by process id."""
        if self._ray is not None and self._ray.is_initialized():
            for ref in list(self._pending):
                with contextlib.suppress(Exception):
                    self._ray.cancel(ref, force=True)
        self._pending.clear()
        self._queue.clear()
        self._images.clear()
        self._stop()

    def _stop(self) -> None:
        if self._owned_start is not None:  # this executor started a local Ray
            import psutil

            started = [
                p
                for p in psutil.Process().children(recursive=True)
                if p.pid not in self._owned_start
            ]
        else:
            started = []
        ours = self._connected or self._owned_start is not None  # not the caller's
        if ours and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._connected = False
        stop_processes(started)
        if self._environ is not None:
            for name in set(os.environ) - set(self._environ):
                del os.environ[name]
            os.environ.update(self._environ)
            self._environ = None
        if self._single_machine is not None:
            from ray._private import ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = self._single_machine
            self._single_machine = None
        self._ray = None
        self._owned_start = None


def stop_processes(processes, timeout: float = 10.0) -> list[int]:
    """End ``processes`` (``psutil.Process``) that are still running, by process id:
    SIGTERM, then SIGKILL after ``timeout`` s; return the ids that had to be ended."""
    if not processes:
        return []
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=1.0)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive_after = psutil.wait_procs(alive, timeout=timeout)
    for process in alive_after:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive_after, timeout=timeout)
    return [p.pid for p in alive]
