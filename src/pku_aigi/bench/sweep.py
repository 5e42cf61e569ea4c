"""The rate-distortion sweep: every image x codec x quality, measured once and cached.

A measurement encodes an image, stores nothing but counts the exact bytes, decodes them
and scores the reconstruction (PSNR, MS-SSIM, MS-SSIM dB on RGB 8-bit; bpp of the whole
stored file and, for learned codecs, of the entropy-coded payload alone; encode and
decode seconds). Conventional codecs run on an executor: worker processes on this
machine (:class:`ProcessPool`, one per core) or Ray tasks on a cluster
(:mod:`.ray_executor`); learned codecs run in the main process, on CUDA when available,
while the workers are busy.
Each finished measurement is appended to ``measurements.jsonl`` in the output folder,
keyed by image content hash, codec name, codec version and quality, so rerunning an
interrupted sweep only does the missing work.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .. import metrics
from ..codecs.base import Codec
from ..errors import CodecError, PkuAigiError
from .costs import METRICS_SECONDS_PER_MP, SECONDS_PER_MP, speed_factor
from .images import BenchImage

logger = logging.getLogger(__name__)

CACHE_FILE = "measurements.jsonl"
LOCK_FILE = ".bench.lock"


@dataclass
class CodecRun:
    """One codec of a sweep and its quality grid.

    Conventional codecs are given by registry ``name`` (``codec`` None) and are built
    again in each worker process; learned codecs (or any codec object) are given as
    ``codec`` and run in the main process.
    """

    name: str
    qualities: tuple[float, ...]
    codec: Codec | None = None
    options: dict = field(default_factory=dict)
    label: str | None = None  # name in reports (defaults to ``name``)

    @property
    def parallel(self) -> bool:
        return self.codec is None

    @property
    def display_name(self) -> str:
        return self.label or self.name

    def version(self) -> str:
        """The codec's version string (part of every cache key)."""
        if self.codec is not None:
            return self.codec.version
        from .. import codecs

        return codecs.get(self.name, **self.options).version


def format_quality(quality: float) -> str:
    return format(float(quality), "g")


def cache_key(image_key: str, codec: str, version: str, quality: float) -> str:
    return f"{image_key}|{codec}|{version}|{format_quality(quality)}"


class MeasurementCache:
    """Append-only JSONL file of measurements, one row a line.

    Each row is appended with one ``write`` on an ``O_APPEND`` descriptor. A line cut by
    an interrupt (no final newline) is discarded when the cache is opened, so the next
    row starts on a line of its own instead of being glued to the torn one
    (``read_only``: left in the file, e.g. while another run writes into it).
    """

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data) and not read_only:
            logger.warning(
                "%s: discarding an incomplete last line (an interrupted run); its "
                "measurement will be made again",
                self.path,
            )
            os.truncate(self.path, len(complete))
        for number, line in enumerate(complete.decode("utf-8", "replace").splitlines(), 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                logger.warning(
                    "%s:%d: skipping a line that is not a measurement", self.path, number
                )
                continue
            self.rows[row["key"]] = row

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def add(self, row: dict) -> None:
        self.rows[row["key"]] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(row, allow_nan=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            while written < len(line):  # a regular file takes it whole; be exact anyway
                written += os.write(fd, line[written:])
        finally:
            os.close(fd)

    def earlier_rows(self, image_keys: set[str], codecs: set[str]) -> list[dict]:
        """Rows of codecs other than ``codecs`` on these images, from earlier runs.

        Keeps a report complete when a run selects other codecs than the last one.
        Of a codec cached under several versions, the most recently added one is kept.
        """
        latest: dict[str, str] = {}
        for row in self.rows.values():
            if row.get("codec") not in codecs and row.get("image_key") in image_keys:
                latest[row["codec"]] = row.get("codec_version")
        return [
            row
            for row in self.rows.values()
            if row.get("codec") in latest
            and row.get("image_key") in image_keys
            and row.get("codec_version") == latest[row["codec"]]
        ]


class OutDirBusyError(PkuAigiError):
    """Another process is running a benchmark into the same output folder."""


_HELD_LOCKS: dict[Path, list] = {}  # folder -> [descriptor, depth]: re-entrant per process


@contextlib.contextmanager
def out_dir_lock(out_dir: str | Path):
    """Hold ``out_dir/.bench.lock`` (``flock``) for the duration of a run.

    Two runs into one folder would measure the same work twice and overwrite each
    other's report; the second one stops at once with :class:`OutDirBusyError`.
    """
    folder = Path(out_dir).resolve()
    if folder in _HELD_LOCKS:
        _HELD_LOCKS[folder][1] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[folder][1] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise OutDirBusyError(
            f"another benchmark (process {holder}) is writing into {folder}: wait for it to "
            "finish, or give this run another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD_LOCKS[folder] = [fd, 1]
    try:
        yield
    finally:
        del _HELD_LOCKS[folder]
        os.close(fd)  # releases the lock


def payload_bytes(codec: Codec, data: bytes) -> int | None:
    """Entropy-coded payload size of an .aigic file; None for conventional codecs."""
    if getattr(codec, "file_extension", "") != ".aigic":
        return None
    from ..codecs.container import payload_size

    return payload_size(data)


def measure(
    codec: Codec,
    rgb: np.ndarray,
    quality: float,
    prompt: str | None = None,
    keep_reconstruction: bool = False,
) -> dict:
    """Encode, decode and score one image at one quality (no image key, no cache)."""
    image = Image.fromarray(rgb)
    start = time.perf_counter()
    data = codec.encode(image, quality, prompt=prompt)
    encoded = time.perf_counter()
    reconstruction = metrics.to_rgb_array(codec.decode(data))
    decoded = time.perf_counter()
    if reconstruction.shape != rgb.shape:
        raise CodecError(
            f"{codec.name} at quality {quality} decoded a {reconstruction.shape[1]}x"
            f"{reconstruction.shape[0]} image from a {rgb.shape[1]}x{rgb.shape[0]} input"
        )
    height, width = rgb.shape[:2]
    payload = payload_bytes(codec, data)
    # None for images too small for MS-SSIM (sweeps refuse them up front; training
    # validation crops may be small)
    ms_ssim = (
        metrics.ms_ssim(rgb, reconstruction)
        if min(height, width) >= metrics.MS_SSIM_MIN_SIDE
        else None
    )
    row = {
        "bytes": len(data),
        "payload_bytes": payload,
        "bpp": metrics.bpp(len(data), width, height),
        "payload_bpp": None if payload is None else metrics.bpp(payload, width, height),
        "psnr": metrics.psnr(rgb, reconstruction),
        "ms_ssim": ms_ssim,
        "ms_ssim_db": None if ms_ssim is None else metrics.ms_ssim_db(ms_ssim),
        "encode_s": encoded - start,
        "decode_s": decoded - encoded,
    }
    if keep_reconstruction:
        row["reconstruction"] = reconstruction
    return row


# Worker side: codecs are built once per process; the images arrive once per worker
# (inherited on fork, pickled once on spawn), tasks name them by index.
_WORKER_CODECS: dict[tuple, Codec] = {}
_WORKER_IMAGES: list[np.ndarray] = []

# Thread pools that read their size from the environment when they start: set before
# the libraries start them in a spawned worker (and for ffmpeg's children).
_ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_one_thread() -> None:
    """One thread in this (worker) process for torch, BLAS and every codec library."""
    for name in _ONE_THREAD_ENV:
        os.environ[name] = "1"
    import torch

    from ..codecs.threads import set_codec_threads

    torch.set_num_threads(1)
    set_codec_threads(1)


def _init_worker(images: list[np.ndarray]) -> None:
    global _WORKER_IMAGES
    pin_one_thread()
    _WORKER_IMAGES = images


def worker_codec(name: str, options: dict) -> Codec:
    """The codec ``name`` with ``options``, built once per process."""
    from .. import codecs

    key = (name, tuple(sorted(options.items())))
    if key not in _WORKER_CODECS:
        _WORKER_CODECS[key] = codecs.get(name, **options)
    return _WORKER_CODECS[key]


def _measure_in_worker(name: str, options: dict, image_index: int, quality, prompt, keep):
    codec = worker_codec(name, options)
    return measure(codec, _WORKER_IMAGES[image_index], quality, prompt, keep)


# Encode + decode seconds per megapixel at mid rate (README, bench_codecs_conventional),
# to start the longest tasks first: a long VVC encode started last leaves the other
# cores idle at the end of a sweep. Other codecs count as 1 s/MP.
def _task_cost(run: CodecRun, image: BenchImage, quality: float) -> float:
    """Estimated cost of one measurement: pixels x codec cost, higher rates slower."""
    cls = _codec_class(run.name)  # a plugin factory has no ladder: rank 1
    grid = sorted(getattr(cls, "default_qualities", None) or (quality,))
    rank = sum(q <= quality for q in grid) / len(grid)
    if not getattr(cls, "higher_quality_is_better", True):
        rank = 1 - rank + 1 / len(grid)
    codec_seconds = SECONDS_PER_MP.get(getattr(cls, "name", run.name), 1.0) * (0.5 + rank)
    codec_seconds *= speed_factor(cls, run.options)
    return image.width * image.height / 1e6 * (codec_seconds + METRICS_SECONDS_PER_MP)


def estimate_seconds(tasks, workers: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds with ``workers``) of ``(run, image, quality)`` tasks,
    from the codecs' seconds per megapixel at their speed settings: a rough figure."""
    cpu = sum(_task_cost(run, image, quality) for run, image, quality, *_ in tasks)
    return cpu, cpu / max(1, min(workers, len(tasks)))


def duration(seconds: float) -> str:
    """``seconds`` in s, min or h, rounded for a log line."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _codec_class(name: str):
    from .. import codecs

    try:
        return codecs.codec_class(name)
    except Exception:  # noqa: BLE001 - an unknown name only loses the ordering hint
        return None


@dataclass
class Extras:
    """Optional metrics scored in the main process on each reconstruction."""

    clip: metrics.ClipScorer | None = None
    lpips: metrics.LpipsScorer | None = None

    @property
    def needed(self) -> bool:
        return self.clip is not None or self.lpips is not None

    def fields(self) -> list[str]:
        return [name for name, on in (("clip_score", self.clip), ("lpips", self.lpips)) if on]

    def score(self, image: BenchImage, row: dict) -> None:
        reconstruction = row.pop("reconstruction", None)
        if reconstruction is None:
            return
        if self.clip is not None:
            prompt = image.reference_prompt or image.prompt  # the image's own prompt
            row["clip_score"] = self.clip.score(reconstruction, prompt) if prompt else None
            if prompt:
                row["clip_score_original"] = self.clip.score(image.rgb, prompt)
        if self.lpips is not None:
            row["lpips"] = self.lpips.distance(image.rgb, reconstruction)


@dataclass
class Failure:
    image: str
    codec: str
    quality: float
    error: str


@dataclass
class SweepResult:
    rows: list[dict]  # every measurement of the requested work (cached and new)
    failures: list[Failure]
    measured: int  # new measurements made in this run
    reused: int  # measurements taken from the cache
    earlier: list[dict] = field(default_factory=list)  # other codecs' rows, same images
    retried: list[Failure] = field(default_factory=list)  # first attempts that failed


# A measurement to make: (run, image, quality, row fields known before coding)
Task = tuple[CodecRun, BenchImage, float, dict]


@dataclass
class Plan:
    """What a sweep will do: the cached measurements it reuses and those it makes."""

    cached: list[tuple[CodecRun, BenchImage, float, dict]]  # (run, image, quality, row)
    tasks: list[Task]


def plan_sweep(
    images: list[BenchImage], runs: Iterable[CodecRun], cache: MeasurementCache, fields=()
) -> Plan:
    """Split every image x codec x quality into cached rows (holding every one of
    ``fields``, the optional metrics asked for) and measurements to make."""
    plan = Plan([], [])
    for run in runs:
        version = run.version()
        for quality in run.qualities:
            for image in images:
                key = cache_key(image.key, run.display_name, version, quality)
                cached = cache.get(key)
                if cached is not None and all(f in cached for f in fields):
                    plan.cached.append((run, image, quality, cached))
                    continue
                base = {
                    "key": key,
                    "image": image.name,
                    "image_key": image.key,
                    "subset": image.subset,
                    "width": image.width,
                    "height": image.height,
                    "prompt_chars": len(image.prompt) if image.prompt else 0,
                    "codec": run.display_name,
                    "codec_version": version,
                    "quality": quality,
                }
                plan.tasks.append((run, image, quality, base))
    return plan


class ProcessPool:
    """The local executor: measurements in worker processes on this machine.

    An executor takes the conventional-codec tasks of a sweep, longest first, in
    :meth:`start`, hands back finished ones from :meth:`done` as ``(task, row fields,
    error)`` and is :attr:`busy` until every task has come back once.
    """

    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()
        self.retried: list[Failure] = []  # never retries: a failure is deterministic here
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[Future, Task] = {}

    def open(self) -> None:
        """Ready to take tasks (nothing to do for the local pool)."""

    def describe(self) -> str:
        if self.workers <= 1:
            return "local, in this process"
        return f"local, {self.workers} worker processes"

    def start(self, images: list[BenchImage], tasks: list[Task], keep: bool) -> None:
        # fork starts workers at once (torch is already imported); spawn elsewhere.
        methods = multiprocessing.get_all_start_methods()
        index = {id(image): i for i, image in enumerate(images)}
        self._pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)),
            mp_context=multiprocessing.get_context("fork" if "fork" in methods else "spawn"),
            initializer=_init_worker,
            initargs=([image.rgb for image in images],),
        )
        for task in tasks:  # the pool runs tasks in submission order
            run, image, quality, _ = task
            future = self._pool.submit(
                _measure_in_worker, run.name, run.options, index[id(image)], quality,
                image.prompt, keep,
            )  # fmt: skip
            self._pending[future] = task

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def done(self, block: bool) -> list[tuple[Task, dict | None, BaseException | None]]:
        if not self._pending:
            return []
        finished, _ = wait(
            list(self._pending), timeout=None if block else 0, return_when=FIRST_COMPLETED
        )
        results = []
        for future in finished:
            error = future.exception()
            results.append((self._pending.pop(future), None if error else future.result(), error))
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sweep(
    images: list[BenchImage],
    runs: Iterable[CodecRun],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    extras: Extras | None = None,
    progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
    executor=None,
) -> SweepResult:
    """Measure every image x codec x quality not in the cache; return all rows.

    ``executor`` runs the conventional codecs (default: a :class:`ProcessPool` of
    ``workers`` processes; :class:`~pku_aigi.bench.ray_executor.RayExecutor` for a Ray
    cluster). Holds :func:`out_dir_lock` on ``out_dir`` while it runs.
    """
    with out_dir_lock(out_dir):
        return _run_sweep(images, runs, out_dir, workers, extras, progress, on_row, executor)


def _run_sweep(images, runs, out_dir, workers, extras, progress, on_row, executor) -> SweepResult:
    from tqdm.auto import tqdm

    extras = extras or Extras()
    cache = MeasurementCache(Path(out_dir) / CACHE_FILE)
    runs = list(runs)
    executor = executor or ProcessPool(workers)

    plan = plan_sweep(images, runs, cache, extras.fields())
    rows: list[dict] = [row for *_, row in plan.cached]
    failures: list[Failure] = []
    parallel_tasks = [task for task in plan.tasks if task[0].parallel]
    main_tasks = [task for task in plan.tasks if not task[0].parallel]
    if isinstance(executor, ProcessPool) and executor.workers <= 1:  # in this process
        main_tasks, parallel_tasks = parallel_tasks + main_tasks, []
    reused = len(rows)
    total = len(plan.tasks)
    if parallel_tasks:
        try:
            executor.open()  # e.g. connects to Ray: its CPUs set the wall-time estimate
        except BaseException:
            executor.close()
            raise
    if total:
        cpu, wall = estimate_seconds(plan.tasks, executor.workers)
        per_codec = Counter(task[0].display_name for task in plan.tasks)
        logger.info(
            "sweep: %d measurements to make (%s), %d cached; estimated %s of CPU time, about "
            "%s on %s (from each codec's seconds per megapixel at its speed setting)",
            total,
            ", ".join(f"{name} {n}" for name, n in per_codec.items()),
            reused,
            duration(cpu),
            duration(wall),
            executor.describe(),
        )
    else:
        logger.info("sweep: all %d measurements cached", reused)

    bar = tqdm(total=total, desc="bench", unit=" measurements", disable=not progress or total == 0)

    def finish(image: BenchImage, base: dict, result: dict | None, error: BaseException | None):
        bar.update(1)
        if error is not None:
            failures.append(
                Failure(
                    image.name, base["codec"], base["quality"], f"{type(error).__name__}: {error}"
                )
            )
            logger.error("%s %s q=%s failed: %s", base["codec"], image.name, base["quality"], error)
            return
        extras.score(image, result)
        row = {**base, **result}
        cache.add(row)
        rows.append(row)
        if on_row:
            on_row(row)

    def drain(block: bool) -> None:
        while executor.busy:
            finished = executor.done(block)
            for (_, image, _, base), result, error in finished:
                finish(image, base, result, error)
            if not finished and not block:
                return

    try:
        if parallel_tasks:
            parallel_tasks.sort(key=lambda task: -_task_cost(*task[:3]))  # longest first
            executor.start(images, parallel_tasks, extras.needed)
        for run, image, quality, base in main_tasks:
            try:
                codec = run.codec or worker_codec(run.name, run.options)
                result = measure(codec, image.rgb, quality, image.prompt, extras.needed)
                finish(image, base, result, None)
            except Exception as error:  # noqa: BLE001 - recorded as a failure, run goes on
                finish(image, base, None, error)
            drain(block=False)
        drain(block=True)
    finally:
        bar.close()
        executor.close()
    earlier = cache.earlier_rows({i.key for i in images}, {r.display_name for r in runs})
    return SweepResult(rows, failures, len(rows) - reused, reused, earlier, list(executor.retried))
