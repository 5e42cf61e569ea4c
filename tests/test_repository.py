"""The tracked tree itself: no merge-conflict markers left in any file.

``.ci/run`` runs the same check with ``git grep`` before it installs anything, so that
CI fails fast; this test also catches markers when the tests are run another way.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The lines git writes around a conflict: "<<<<<<< ours", "=======", ">>>>>>> theirs".
# "=======" must be the whole line: reStructuredText tables and Markdown headings are
# underlined with runs of "=" of another length, or with text beside them.
START, MIDDLE, END = b"<<<<<<< ", b"=======", b">>>>>>> "
# git's own rule for a binary file: a NUL byte in its first 8000 bytes.
BINARY_SNIFF = 8000


def conflict_markers(root: Path, paths: Iterable[str]) -> list[str]:
    """``"path:line: text"`` for every line of the text files ``paths`` (relative to
    ``root``) that is a merge-conflict marker. Binary files, symlinks and paths that are
    not regular files (submodules, files deleted in the working tree) are skipped."""
    found = []
    for name in paths:
        path = root / name
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:BINARY_SNIFF]:
            continue
        for number, line in enumerate(data.split(b"\n"), start=1):
            line = line.removesuffix(b"\r")
            if line.startswith((START, END)) or line == MIDDLE:
                text = line.decode("utf-8", "replace")
                found.append(f"{name}:{number}: {text}")
    return found


def tracked_files(root: Path) -> list[str]:
    """The files git tracks under ``root``; the test is skipped outside a git checkout."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    run = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, timeout=60
    )
    if run.returncode != 0:
        reason = run.stderr.decode(errors="replace").strip()
        pytest.skip(f"{root} is not a git checkout: {reason}")
    return [name for name in run.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def test_no_tracked_file_holds_conflict_markers():
    paths = tracked_files(ROOT)
    assert "pyproject.toml" in paths  # the listing is the project's own
    found = conflict_markers(ROOT, paths)
    assert not found, "merge-conflict markers left in:\n" + "\n".join(found)


def test_markers_are_found_with_their_files_and_lines(tmp_path):
    conflicted = [
        "intro",
        "<<<<<<< HEAD",
        "ours",
        "=======",
        "theirs",
        ">>>>>>> feature",
        "outro",
    ]
    (tmp_path / "notes.md").write_text("\n".join(conflicted) + "\n")
    (tmp_path / "windows.txt").write_bytes(b"a\r\n=======\r\nb\r\n")
    sub = tmp_path / "src"
    sub.mkdir()
    (sub / "clean.py").write_text('x = "<<<<<<< not at the line start"\n')
    found = conflict_markers(tmp_path, ["notes.md", "windows.txt", "src/clean.py"])
    assert found == [
        "notes.md:2: <<<<<<< HEAD",
        "notes.md:4: =======",
        "notes.md:6: >>>>>>> feature",
        "windows.txt:2: =======",
    ]


def test_underlines_binary_files_and_missing_paths_are_not_markers(tmp_path):
    underlines = [
        "Title",
        "=====",  # Markdown / reStructuredText underlines of other lengths
        "Longer title",
        "============",
        "=================  ===========",  # a reStructuredText table's border
        "======= not alone on its line",
        " =======",
        "<<<<<<<no space",
        ">>>>>>>",
    ]
    (tmp_path / "doc.rst").write_text("\n".join(underlines) + "\n")
    (tmp_path / "image.bin").write_bytes(b"\x89PNG\0\n=======\n<<<<<<< x\n")
    (tmp_path / "folder").mkdir()
    paths = ["doc.rst", "image.bin", "folder", "deleted.txt"]
    assert conflict_markers(tmp_path, paths) == []


def ci_check() -> str:
    """The conflict-marker check of ``.ci/run``: its lines from ``if git`` to ``fi``."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("if ") and "git grep" in line)
    end = lines.index("fi", start)
    return "\n".join(lines[start : end + 1])


def test_ci_runs_the_same_check_before_installing(tmp_path):
    script = (ROOT / ".ci" / "run").read_text()
    check = ci_check()
    assert script.index(check) < min(script.index("apt-get"), script.index("pip install"))
    if shutil.which("git") is None or shutil.which("bash") is None:
        pytest.skip("git and bash run the check")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "clean.rst").write_text("Title\n=====\n\n===  ===\n")
    (repo / "crlf.txt").write_bytes(b"ok\r\n")
    (repo / "untracked.txt").write_text("=======\n")  # not tracked: not checked

    def run():
        return subprocess.run(
            ["bash", "-c", check], cwd=repo, capture_output=True, text=True, timeout=60
        )

    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True, timeout=60)
    subprocess.run([*git, "add", "clean.rst", "crlf.txt"], check=True, timeout=60)
    assert run().returncode == 0
    (repo / "crlf.txt").write_bytes(b"ok\r\n=======\r\n")
    (repo / "code.py").write_text("\n".join(["a = 1", "<<<<<<< HEAD", "b = 2", ">>>>>>> x"]))
    subprocess.run([*git, "add", "code.py"], check=True, timeout=60)
    result = run()
    assert result.returncode == 1 and "merge-conflict markers" in result.stderr
    assert result.stdout.splitlines() == [
        "code.py:2:<<<<<<< HEAD",
        "code.py:4:>>>>>>> x",
        "crlf.txt:2:=======",  # its "\r", a line break to splitlines
    ]
    assert conflict_markers(repo, tracked_files(repo)) == [
        "code.py:2: <<<<<<< HEAD",
        "code.py:4: >>>>>>> x",
        "crlf.txt:2: =======",
    ]
