"""Where commands write the user's files: checked before the work, written atomically.

One rule for every command that writes a file or a folder the user named (``compress``,
``decompress``, ``bench --out``, ``data export|script``, ``models convert-compressai``,
``train --out``, ``space build``): the target is checked up front (a folder where a file
is expected and the reverse, an existing file without ``--force``, a parent that does not
exist or cannot be written), and every failure is one :class:`~pku_aigi.errors.OutputError`
saying what to do, never an ``OSError`` traceback. Files are written to a temporary
file beside the target, created exclusively under a short random name (never through a
symbolic link, and it fits wherever the target's name fits), and renamed over it, so a
failure leaves neither a half-written file nor a stray temporary one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import OutputError


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _probe_writable(folder: Path, target: Path) -> None:
    """Create and remove a temporary file in ``folder`` (the one test that cannot lie:
    permission bits, read-only mounts and pseudo file systems such as /proc all show)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".pku-aigi-probe-"):
            pass
    except OSError as error:
        raise OutputError(
            f"cannot write {target}: cannot create files in {folder} ({_reason(error)})"
        ) from None


def _existing_ancestor(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path(path.absolute().anchor)


def _check_name_length(folder: Path, target: Path) -> None:
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return  # unknown: the write says what is wrong
    length = len(os.fsencode(target.name))
    if length > limit:
        raise OutputError(
            f"cannot write {target}: its name is {length} bytes, more than the {limit} "
            f"that {folder} allows: choose a shorter name"
        )


def check_output_file(path: str | os.PathLike, *, force: bool, option: str = "-o") -> Path:
    """Check that ``path`` can receive a file: not a folder, not an existing file unless
    ``force``, a name its file system allows, in an existing writable folder. Raises
    :class:`OutputError`."""
    path = Path(path)
    parent = path.absolute().parent
    try:
        if parent.is_dir():
            _check_name_length(parent, path)
        if path.is_dir():
            raise OutputError(
                f"{option} {path} is a folder: give the output file's name, "
                f"e.g. {path / 'name.ext'}"
            )
        if path.exists() and not force:
            raise OutputError(f"{path} already exists: pass --force to overwrite it")
        if path.exists() and not path.is_file():
            raise OutputError(f"{option} {path} exists and is not a regular file")
        if not parent.is_dir():
            what = "is not a folder" if parent.exists() else "does not exist"
            raise OutputError(f"cannot write {path}: {parent} {what}")
    except OSError as error:  # e.g. a name too long for the path, a folder we may not search
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    _probe_writable(parent, path)
    return path


def _file_mode() -> int:
    """The mode of a new file (``0o666`` less the umask): mkstemp makes ``0o600``."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_file_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder; on any
    failure nothing is left behind and :class:`OutputError` says why.

    The temporary file is made by ``tempfile.mkstemp`` (``O_CREAT | O_EXCL |
    O_NOFOLLOW``, a short random name), so a file or link planted beside the target is
    never written through.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.absolute().parent, prefix=".pku-aigi-", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), _file_mode())
            file.write(data)
        os.replace(tmp, path)
        tmp = None
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):  # a leftover of a failed write
                os.unlink(tmp)


def check_output_folder(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Check that ``path`` is, or can be created as, a writable folder (no file in the
    way, its nearest existing parent writable). Creates nothing."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{option} {path} is a file, not a folder: give a folder")
        if path.is_dir():
            _probe_writable(path, path)
            return path
        ancestor = _existing_ancestor(path)
        if not ancestor.is_dir():
            raise OutputError(f"cannot create {option} {path}: {ancestor} is a file, not a folder")
    except OSError as error:
        raise OutputError(f"cannot create {option} {path}: {_reason(error)}") from None
    _probe_writable(ancestor, path)
    return path


def make_output_folder(path: str | os.PathLike, *, option: str = "--out") -> Path:
    """Create the folder ``path`` (and its parents) after :func:`check_output_folder`."""
    path = check_output_folder(path, option=option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {option} {path}: {_reason(error)}") from None
    return path
