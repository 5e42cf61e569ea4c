"""One network policy for every download and upload: fail fast, once per host.

The Hub (models, datasets, the CLIP text encoder, pushes) is reached through
``huggingface_hub``'s shared HTTP client, and the zoo's published checkpoints through
:func:`download`. Both go through :class:`FailFastTransport`:

- the first failed *connection* to a host (DNS failure, refused, connect timeout) is
  remembered for the rest of the process, and every later request to that host fails at
  once, without a new attempt;
- the failure is raised as :class:`HostUnreachable`, which ``huggingface_hub`` treats
  like its offline mode (it falls back to the local cache) and does not retry, so no
  backoff (5 retries, about 23 s and two warning lines each) is spent on a host that
  cannot be reached.

:func:`guard` turns any network failure inside it into one :class:`NetworkError` line
that names what could not be reached and what to do instead (``HF_HUB_OFFLINE=1`` and
the local cache, a local folder, ``--data-dir``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from .errors import NetworkError

logger = logging.getLogger(__name__)

# Seconds to wait for a TCP connection before calling a host unreachable.
CONNECT_TIMEOUT = 10.0
# Seconds to wait for data once connected (a stalled download is an error, not a hang).
READ_TIMEOUT = 60.0
OFFLINE_HINT = (
    "To work offline, set HF_HUB_OFFLINE=1 and use files already in the local Hugging Face cache"
)

_lock = threading.Lock()
_unreachable: dict[str, str] = {}  # host -> why the first connection failed
_warned: set[str] = set()
_installed = False


def _httpx():
    """The httpx module huggingface_hub uses (``httpx2`` since huggingface_hub 2)."""
    try:
        import httpx2 as httpx
    except ImportError:  # huggingface_hub 1.x
        import httpx
    return httpx


def host_of(url: str) -> str:
    """``host`` or ``host:port`` (when the URL names a port): what is remembered."""
    return urlsplit(str(url)).netloc.rsplit("@", 1)[-1] or str(url)


def unreachable_reason(host: str) -> str | None:
    """Why ``host`` could not be reached earlier in this process (None if it could)."""
    with _lock:
        return _unreachable.get(host)


def remember_unreachable(host: str, reason: str) -> None:
    with _lock:
        _unreachable.setdefault(host, reason)


def forget_unreachable() -> None:
    """Forget every remembered failure (e.g. after the network came back; for tests)."""
    with _lock:
        _unreachable.clear()
        _warned.clear()


def warn_once(key: str, message: str, *args) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def _host_unreachable_class():
    from huggingface_hub.errors import OfflineModeIsEnabled

    class HostUnreachable(OfflineModeIsEnabled):
        """A host that could not be connected to (``huggingface_hub``: treat as offline)."""

        def __init__(self, host: str, reason: str, remembered: bool):
            self.host, self.reason, self.remembered = host, reason, remembered
            when = "earlier in this process" if remembered else "now"
            super().__init__(f"cannot connect to {host} ({when}): {reason}")

    return HostUnreachable


_HostUnreachable = None


def host_unreachable_error(host: str, reason: str, remembered: bool) -> Exception:
    global _HostUnreachable
    if _HostUnreachable is None:
        _HostUnreachable = _host_unreachable_class()
    return _HostUnreachable(host, reason, remembered)


def is_host_unreachable(error: BaseException) -> bool:
    return _HostUnreachable is not None and isinstance(error, _HostUnreachable)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class FailFastTransport:
    """Wraps an httpx transport: one connection failure per host, then fail at once."""

    def __init__(self, inner):
        self.inner = inner

    def _check(self, request) -> str:
        host = host_of(str(request.url))
        reason = unreachable_reason(host)
        if reason is not None:
            raise host_unreachable_error(host, reason, remembered=True)
        return host

    def _failed(self, host: str, error: BaseException) -> Exception:
        reason = _short(error)
        remember_unreachable(host, reason)
        return host_unreachable_error(host, reason, remembered=False)

    def handle_request(self, request):
        httpx = _httpx()
        host = self._check(request)
        try:
            return self.inner.handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise self._failed(host, error) from error

    async def handle_async_request(self, request):
        httpx = _httpx()
        host = self._check(request)
        try:
            return await self.inner.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise self._failed(host, error) from error

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def _wrap_client(client):
    """Put :class:`FailFastTransport` around every transport of an httpx client."""
    client._transport = FailFastTransport(client._transport)
    client._mounts = {
        pattern: (FailFastTransport(transport) if transport is not None else None)
        for pattern, transport in client._mounts.items()
    }
    return client


def install() -> None:
    """Route ``huggingface_hub``'s HTTP clients through the fail-fast policy (idempotent).

    Everything that reaches the Hub through ``huggingface_hub`` (``datasets``,
    ``transformers``, ``HfApi``, ``hf_hub_download``) then shares the policy.
    """
    global _installed
    if _installed:
        return
    try:
        from huggingface_hub.utils import _http as hf_http
    except ImportError:  # pragma: no cover - huggingface_hub too old: keep its own policy
        return
    if not hasattr(hf_http, "set_client_factory"):  # pragma: no cover - huggingface_hub < 1
        return
    default_client, default_async = hf_http.default_client_factory, None
    default_async = getattr(hf_http, "default_async_client_factory", None)
    hf_http.set_client_factory(lambda: _wrap_client(default_client()))
    if default_async is not None:
        hf_http.set_async_client_factory(lambda: _wrap_client(default_async()))
    _installed = True


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read as huggingface_hub reads it)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _network_cause(error: BaseException) -> BaseException | None:
    """The connection failure behind ``error`` (itself or in its chain), if any."""
    httpx = _httpx()
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if is_host_unreachable(error) or isinstance(
            error, (httpx.ConnectError, httpx.TimeoutException, ConnectionError)
        ):
            return error
        error = error.__cause__ or error.__context__
    return None


def is_network_error(error: BaseException) -> bool:
    """True when a connection failure (or offline mode) is behind ``error``."""
    return _network_cause(error) is not None


def unreachable_message(
    what: str, error: BaseException, hint: str = "", *, offline_hint: bool = True
) -> str:
    """One line: what could not be reached, why, and what to do instead."""
    cause = _network_cause(error) or error
    tail = f" {hint.rstrip('.')}." if hint else ""
    if not is_host_unreachable(cause) and "offline mode is enabled" in str(cause).lower():
        return (
            f"cannot get {what}: HF_HUB_OFFLINE=1 is set and it is not in the local cache."
            f"{tail} Or unset HF_HUB_OFFLINE to download it."
        )
    if is_host_unreachable(cause):
        reason = f"cannot connect to {cause.host}: {cause.reason}"
    else:
        reason = _short(cause)
    return f"cannot reach {what}: {reason}.{tail}" + (f" {OFFLINE_HINT}." if offline_hint else "")


def short_reason(error: BaseException) -> str:
    """The network failure behind ``error`` as one phrase (no advice)."""
    cause = _network_cause(error) or error
    if is_host_unreachable(cause):
        return f"cannot connect to {cause.host}: {cause.reason}"
    return _short(cause)


def why_offline(error: BaseException | None = None) -> str:
    """Why the network was not used: offline mode, or the host that failed (one phrase)."""
    if is_offline():
        return "HF_HUB_OFFLINE=1 is set"
    cause = _network_cause(error) if error is not None else None
    if cause is not None and is_host_unreachable(cause):
        return f"the Hub cannot be reached (cannot connect to {cause.host}: {cause.reason})"
    with _lock:
        known = dict(_unreachable)
    if known:
        host, reason = next(iter(known.items()))
        return f"the Hub cannot be reached (cannot connect to {host}: {reason})"
    return "the Hub cannot be reached"


@contextlib.contextmanager
def guard(what: str, hint: str = "", *, http_errors: bool = False) -> Iterator[None]:
    """Turn a network failure inside the block into one :class:`NetworkError` line.

    Args:
        what: what was being reached, e.g. "the Hub to push model repo org/name".
        hint: what to do instead (a local folder, ``--data-dir``), one sentence.
        http_errors: also turn the Hub's error answers (401, 403, 404, 5xx) into one
            line, for uploads, where no caller handles them. Uploads get no advice
            about offline mode (there is nothing to read from a cache).
    """
    from .errors import PkuAigiError

    install()
    try:
        yield
    except PkuAigiError:
        raise
    except Exception as error:
        if _network_cause(error) is not None:
            message = unreachable_message(what, error, hint, offline_hint=not http_errors)
            raise NetworkError(message) from None
        if http_errors and _is_hub_http_error(error):
            raise NetworkError(_refused_message(what, error)) from None
        raise


def _is_hub_http_error(error: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    return isinstance(error, HfHubHTTPError)


def _refused_message(what: str, error: BaseException) -> str:
    status = getattr(getattr(error, "response", None), "status_code", None)
    advice = {
        401: "Log in with `hf auth login` (or set HF_TOKEN) with a write token",
        403: "Your token may not write there: use a write token, or a repo of your own",
    }.get(status, "Check the repo id and your token")
    return f"the Hub refused {what}: {_short(error)}. {advice}."


# ---------------------------------------------------------------------- downloads
CHUNK = 1 << 20


def client():
    """An httpx client for plain downloads (not the Hub) under the fail-fast policy."""
    httpx = _httpx()
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    return _wrap_client(httpx.Client(follow_redirects=True, timeout=timeout))


def download(url: str, dest: str | os.PathLike, *, what: str) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.incomplete`` left by a cut download.

    Only a complete file is renamed to ``dest`` (atomically); a cut download stays as
    ``dest.incomplete`` and the next call asks the server for the rest (HTTP Range).
    ``file://`` URLs and plain paths are copied (mirrors on a shared disk).

    Raises:
        NetworkError: the host cannot be reached, answers with an error status, or the
            transfer is cut off before the announced size.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".incomplete")
    if urlsplit(url).scheme in ("", "file"):
        return _copy_local(url, dest, partial, what)
    httpx = _httpx()
    offset = partial.stat().st_size if partial.is_file() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    received = 0
    total = None
    try:
        with client() as session, session.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:  # nothing left to send: start again
                partial.unlink(missing_ok=True)
                return download(url, dest, what=what)
            if response.status_code >= 400:
                raise NetworkError(
                    f"cannot download {what} from {url}: the server answered HTTP "
                    f"{response.status_code}. Check the URL (or the mirror set with "
                    "PKU_AIGI_COMPRESSAI_URL)"
                )
            if response.status_code != 206:  # the server ignores Range: start again
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            with (
                open(partial, "ab" if offset else "wb") as handle,
                _progress(total, offset, what) as bar,
            ):
                for chunk in response.iter_bytes():  # as received: a cut keeps every byte
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except NetworkError:
        raise
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as error:
        raise _cut_off(url, what, partial, total, error) from None
    except Exception as error:
        if _network_cause(error) is None:
            raise
        raise NetworkError(
            unreachable_message(f"{host_of(url)} to download {what}", error)
        ) from None
    size = partial.stat().st_size
    if total is not None and size != total:
        raise _cut_off(url, what, partial, total, None)
    os.replace(partial, dest)
    return dest


def _cut_off(url, what, partial: Path, total, error) -> NetworkError:
    size = partial.stat().st_size if partial.is_file() else 0
    of = f" of {total}" if total else ""
    because = f" ({_short(error)})" if error is not None else ""
    return NetworkError(
        f"the download of {what} from {url} was cut off after {size}{of} bytes{because}. "
        f"Run the same command again to resume it (the part is kept as {partial.name})"
    )


def _copy_local(url: str, dest: Path, partial: Path, what: str) -> Path:
    import shutil

    source = Path(urlsplit(url).path if url.startswith("file:") else url)
    if not source.is_file():
        raise NetworkError(f"cannot get {what}: {source} does not exist")
    shutil.copyfile(source, partial)
    os.replace(partial, dest)
    return dest


def _progress(total, offset, what):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        desc=f"download {what}",
        disable=total is not None and total < (4 << 20),
    )
