"""Structure-aware fuzzing of every input surface, each case in a watched child process.

A *surface* is a module ``benchmarks/fuzz_surfaces/<name>.py`` defining:

- ``SURFACE: str``: its name in the table;
- ``make_cases(rng: random.Random, count: int, workdir: pathlib.Path) -> list[dict]``:
  ``count`` crafted cases (JSON-able dicts, with a short ``"kind"`` naming the mutation;
  any files they need are written under ``workdir``), built in the parent process;
- ``check(case: dict) -> str``: runs one case in a child process and returns
  ``"clean"`` (the input was refused with a :class:`pku_aigi.errors.PkuAigiError`, or was
  valid and decoded to the right result), ``"wrong"`` (a wrong image or value, silently)
  or ``"dropped"`` (examples silently missing). A ``PkuAigiError`` escaping ``check`` also
  counts as clean; any other exception is an *unclean* error.

Children run batches of cases (importing torch once per child); the parent watches each
case: no answer within ``--timeout`` seconds is a *hang* (the child is killed and a
fresh one takes the rest), a child killed by a signal is a *crash* (the case it was
running is the culprit), and an address-space cap (RLIMIT_AS, set in the child after its
imports to what it uses then plus ``--memory-mb``) turns runaway allocations into
``MemoryError``, counted as *over-memory*. Each child's temporary folder
(``tempfile.gettempdir()`` and ``TMPDIR``: where a surface keeps its caches) is measured
after each case and emptied: a case that leaves more than ``--disk-mb`` there (or a child
that wrote that much before it hung or crashed) is *over-disk*, whatever else it did.

Usage::

    python benchmarks/fuzz.py --count 10000 --seed 0          # every surface
    python benchmarks/fuzz.py --surfaces archives images --count 2000 --show 5
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import queue
import random
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SURFACES_DIR = HERE / "fuzz_surfaces"
COLUMNS = ("clean", "unclean", "crash", "hang", "over-memory", "over-disk", "wrong", "dropped")
VERDICTS = ("clean", "wrong", "dropped")  # what check() may return
STARTUP_TIMEOUT_S = 300  # importing torch on a busy 2-core machine
DISK_MB = 256  # what a case may leave in its child's temporary folder


def disk_usage(folder: Path) -> int:
    """Bytes on disk under ``folder`` (allocated blocks: a sparse file counts what it holds)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def empty(folder: Path) -> None:
    """Delete everything in ``folder`` (not the folder)."""
    for entry in list(os.scandir(folder)) if folder.is_dir() else []:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def available_surfaces() -> list[str]:
    return sorted(p.stem for p in SURFACES_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_surface(name: str):
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(f"fuzz_surfaces.{name}")


# ---------------------------------------------------------------- child process side


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    # torch's CPU allocator raises RuntimeError when the address-space cap bites
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "not enough memory" in text
    )


def run_one(module, case: dict) -> tuple[str, str]:
    """(column, detail) of one case, in this process."""
    from pku_aigi.errors import PkuAigiError

    try:
        verdict = module.check(case)
    except PkuAigiError:
        return "clean", ""
    except BaseException as error:  # noqa: BLE001 - classifying every escape is the point
        column = "over-memory" if _is_out_of_memory(error) else "unclean"
        where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
        at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
        return column, f"{type(error).__name__}: {str(error)[:200]}{at}"
    if verdict not in VERDICTS:
        return "unclean", f"check returned {verdict!r}"
    return verdict, ""


def worker_main(surface_names: list[str], memory_mb: int, scratch: Path) -> None:
    """Answer cases read as JSON lines on stdin; one JSON line per case on stdout, with the
    bytes the case left in ``scratch`` (the temporary folder, emptied after each case)."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    scratch.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = tempfile.tempdir = str(scratch)
    os.dup2(2, 1)  # stray prints (also from C libraries) must not corrupt the answers
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash ends at once, no core dump
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    modules = {name: load_surface(name) for name in surface_names}
    if "torch" in sys.modules:  # tiny models run fastest on one thread per child
        sys.modules["torch"].set_num_threads(1)
    for module in modules.values():
        getattr(module, "prepare_worker", lambda: None)()
    if memory_mb:
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = used + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    answers.write('{"ready": true}\n')
    for line in sys.stdin:
        request = json.loads(line)
        column, detail = run_one(modules[request["surface"]], request["case"])
        disk = disk_usage(scratch)
        empty(scratch)
        answers.write(json.dumps({"column": column, "detail": detail, "disk": disk}) + "\n")


# ---------------------------------------------------------------- parent side


class Child:
    """One worker process; restarted by the caller after a crash or a hang."""

    def __init__(self, surfaces: list[str], memory_mb: int, log, scratch: Path):
        self.scratch = scratch
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--memory-mb"]
        command += [str(memory_mb), "--scratch", str(scratch), "--surfaces", *surfaces]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        if self._answer(STARTUP_TIMEOUT_S) is None:
            code = self.stop()
            raise RuntimeError(f"fuzz worker did not start (exit status {code}); see the log")

    def _answer(self, timeout: float) -> dict | None:
        """The next answer; None after ``timeout`` or when the child closed its end."""
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:  # the child died: let its exit status arrive
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            return None
        return json.loads(line)

    def run(self, surface: str, case: dict, timeout: float) -> tuple[str, str, bool, int]:
        """(column, detail, child still usable, bytes the case left on disk)."""
        try:
            self.process.stdin.write(json.dumps({"surface": surface, "case": case}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        answer = self._answer(timeout)
        if answer is not None:
            return answer["column"], answer["detail"], True, answer["disk"]
        column, detail = self._death(timeout)
        disk = disk_usage(self.scratch)
        empty(self.scratch)
        return column, detail, False, disk

    def _death(self, timeout: float) -> tuple[str, str]:
        if self.process.poll() is None:  # still running: a hang
            self.stop()
            return "hang", f"no answer within {timeout:g} s"
        code = self.process.wait()
        if code == -signal.SIGKILL:  # not ours: the kernel's OOM killer
            return "over-memory", "killed by SIGKILL"
        if code < 0:
            return "crash", f"signal {signal.Signals(-code).name}"
        return "crash", f"worker exited with status {code}"

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.wait()


def run_cases(
    cases: list[tuple[str, dict]],
    *,
    jobs: int = 2,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    disk_mb: float = DISK_MB,
    log_path: Path | None = None,
    progress: bool = False,
) -> tuple[dict[str, Counter], list[tuple[str, str, dict, str]]]:
    """Run ``(surface, case)`` pairs in ``jobs`` watched children.

    Returns the counts per surface and column, and every non-clean case as
    ``(surface, column, case, detail)``.
    """
    surfaces = sorted({surface for surface, _ in cases})
    todo: queue.Queue = queue.Queue()
    for item in cases:
        todo.put(item)
    counts = {surface: Counter({column: 0 for column in COLUMNS}) for surface in surfaces}
    findings: list[tuple[str, str, dict, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = [0]
    log = open(log_path or os.devnull, "a")  # noqa: SIM115 - shared by the children
    scratch_root = Path(tempfile.mkdtemp(prefix="pku-aigi-fuzz-scratch-"))

    def drive(index: int) -> None:
        child = None
        try:
            while True:
                try:
                    surface, case = todo.get_nowait()
                except queue.Empty:
                    return
                if child is None:
                    child = Child(surfaces, memory_mb, log, scratch_root / str(index))
                column, detail, alive, disk = child.run(surface, case, timeout)
                if disk > disk_mb * 2**20:
                    left = f"left {disk / 2**20:.1f} MB on disk (bound {disk_mb:g} MB)"
                    detail = f"{left}; {column}{': ' + detail if detail else ''}"
                    column = "over-disk"
                if not alive:
                    child.stop()
                    child = None
                with lock:
                    counts[surface][column] += 1
                    if column != "clean":
                        findings.append((surface, column, case, detail))
                    done[0] += 1
                    if progress and done[0] % 200 == 0:
                        print(f"  {done[0]}/{len(cases)} cases", file=sys.stderr)
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            errors.append(error)
        finally:
            if child is not None:
                child.process.stdin.close()
                child.stop()

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    shutil.rmtree(scratch_root, ignore_errors=True)
    if errors:
        raise errors[0]
    return counts, findings


def split_count(names: list[str], count: int) -> dict[str, int]:
    """Cases per surface: ``NAME=N`` entries take N, the others share the rest evenly."""
    fixed = dict(name.split("=", 1) for name in names if "=" in name)
    shares = {name: int(n) for name, n in fixed.items()}
    rest = [name for name in names if "=" not in name]
    left = max(0, count - sum(shares.values()))
    for index, name in enumerate(rest):
        shares[name] = left // len(rest) + (1 if index < left % len(rest) else 0)
    return shares


def make_all_cases(
    names: list[str], count: int, seed: int, workdir: Path
) -> list[tuple[str, dict]]:
    """``count`` cases in all, split over the surfaces (:func:`split_count`), seeded per
    surface."""
    cases = []
    for name, share in split_count(names, count).items():
        module = load_surface(name)
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        made = module.make_cases(random.Random(f"{seed}:{name}"), share, folder)
        cases += [(module.SURFACE, case) for case in made]
    random.Random(seed).shuffle(cases)  # mix slow and fast surfaces over the workers
    return cases


def fuzz(
    names: list[str] | None = None,
    *,
    count: int = 1000,
    seed: int = 0,
    jobs: int = 2,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    disk_mb: float = DISK_MB,
    workdir: Path | None = None,
    log_path: Path | None = None,
    progress: bool = False,
):
    """Make and run the cases; returns ``(counts, findings)`` as :func:`run_cases`."""
    names = names or available_surfaces()
    with tempfile.TemporaryDirectory(prefix="pku-aigi-fuzz-") as tmp:
        base = Path(workdir or tmp)
        cases = make_all_cases(names, count, seed, base)
        return run_cases(
            cases,
            jobs=jobs,
            timeout=timeout,
            memory_mb=memory_mb,
            disk_mb=disk_mb,
            log_path=log_path,
            progress=progress,
        )


def format_table(counts: dict[str, Counter]) -> str:
    """A Markdown table: one row per surface, one column per outcome, and a total."""
    header = ["surface", "cases", *COLUMNS]
    rows = []
    total = Counter()
    for surface in sorted(counts):
        row = counts[surface]
        total.update(row)
        rows.append([surface, str(sum(row.values())), *(str(row[c]) for c in COLUMNS)])
    rows.append(["**total**", str(sum(total.values())), *(str(total[c]) for c in COLUMNS)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--surfaces",
        nargs="+",
        metavar="NAME[=N]",
        help=f"default: all ({available_surfaces()}); NAME=N gives that surface N cases",
    )
    parser.add_argument(
        "--count", type=int, default=1000, help="cases in all, shared by surfaces without =N"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--memory-mb", type=int, default=1024, help="extra address space")
    parser.add_argument(
        "--disk-mb", type=float, default=DISK_MB, help="what a case may leave on disk"
    )
    parser.add_argument("--show", type=int, default=3, help="findings shown per column")
    parser.add_argument("--log", type=Path, help="children's stderr (default: discarded)")
    parser.add_argument("--json", type=Path, help="also write counts and findings here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args.surfaces, args.memory_mb, args.scratch)
        return 0
    started = time.perf_counter()
    counts, findings = fuzz(
        args.surfaces,
        count=args.count,
        seed=args.seed,
        jobs=args.jobs,
        timeout=args.timeout,
        memory_mb=args.memory_mb,
        disk_mb=args.disk_mb,
        log_path=args.log,
        progress=True,
    )
    elapsed = time.perf_counter() - started
    print(format_table(counts))
    print(
        f"\n{sum(sum(c.values()) for c in counts.values())} cases, seed {args.seed}, "
        f"{args.jobs} jobs, {elapsed:.0f} s"
    )
    shown = Counter()
    for surface, column, case, detail in findings:
        if shown[surface, column] < args.show:
            shown[surface, column] += 1
            print(f"{surface} {column}: {case.get('kind', '?')}: {detail}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "counts": {s: dict(c) for s, c in counts.items()},
                    "findings": [
                        {"surface": s, "column": col, "case": case, "detail": d}
                        for s, col, case, d in findings
                    ],
                },
                indent=1,
            )
        )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
