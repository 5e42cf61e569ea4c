"""Errors the user can act on.

Every problem caused by input (a bad file, an unknown name, a missing archive part) is
raised as a :class:`PkuAigiError` whose message says what is wrong and what to do. The CLI
prints that one message and exits with status 2; anything else is a bug. Network
failures anywhere become one :class:`NetworkError` line (see :mod:`pku_aigi.network`).

Concatenated into ``dataset_script/PKU-AIGI-500K.py`` (the loading script for
``datasets`` < 4, made by :mod:`pku_aigi.data.script_generator`): import only the
standard library, ``datasets`` and the other copied modules.
"""


class PkuAigiError(Exception):
    """Base class of all user-facing errors of this package.

    ``cause``, when set, is the message without the failing item's name, shared by every
    item that fails for the same reason: a report of many items prints it once
    (:func:`by_cause`).
    """

    cause: str | None = None


def by_cause(failures: dict) -> list[tuple[list, str]]:
    """``{name: error or message}`` as ``[(names, message), ...]``, one entry per cause
    (an error's ``cause``, else its text) in the order first seen; a cause met once
    keeps its full message."""
    groups: dict[str, tuple[list, list]] = {}
    for name, failure in failures.items():
        key = getattr(failure, "cause", None) or str(failure)
        names, messages = groups.setdefault(key, ([], []))
        names.append(name)
        messages.append(str(failure))
    return [
        (names, messages[0] if len(names) == 1 else key)
        for key, (names, messages) in groups.items()
    ]


class DatasetError(PkuAigiError):
    """The dataset files, config or split cannot be used as asked."""


class CodecError(PkuAigiError):
    """A codec cannot encode or decode the given input."""


class CodecUnavailableError(CodecError):
    """A codec is known but cannot run on this machine (missing binary or library)."""


class CorruptStreamError(CodecError):
    """Compressed data is truncated, corrupted, or was made by another codec or model."""


class ImageTooLargeError(CorruptStreamError):
    """Compressed data declares an image above the decoder's pixel limit (``max_pixels``);
    raised from the header, before decoding, wherever the format allows."""


class ModelError(PkuAigiError):
    """A learned model cannot be created, loaded or saved as asked."""


class OutputError(PkuAigiError):
    """An output file or folder cannot be written where the user asked."""


class NetworkError(PkuAigiError):
    """A host (the Hub, a checkpoint server) cannot be reached, or a transfer failed."""
