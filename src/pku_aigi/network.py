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

:func:`download` bounds each download: at most its known size (else
``PKU_AIGI_MAX_DOWNLOAD_MB``), within a deadline scaled to that size, following only
http(s) redirects (at most :data:`MAX_REDIRECTS`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

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
# The largest download when its size is not known (``PKU_AIGI_MAX_DOWNLOAD_MB``): well
# above the largest CompressAI checkpoint (about 100 MB).
MAX_DOWNLOAD_ENV = "PKU_AIGI_MAX_DOWNLOAD_MB"
DEFAULT_MAX_DOWNLOAD_MB = 512
# Each download must end within DEADLINE_BASE_S seconds plus its size at MIN_RATE bytes/s.
DEADLINE_BASE_S = 60.0
MIN_RATE = 100_000
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


def max_download_bytes() -> int:
    """The bound on a download whose size is not known (``PKU_AIGI_MAX_DOWNLOAD_MB``)."""
    raw = os.environ.get(MAX_DOWNLOAD_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_DOWNLOAD_MB << 20
    if not raw.isdigit() or not 0 < int(raw) < 1 << 30:
        raise NetworkError(
            f"{MAX_DOWNLOAD_ENV}={raw!r} must be a positive whole number of megabytes "
            f"(default {DEFAULT_MAX_DOWNLOAD_MB})"
        )
    return int(raw) << 20


def deadline_for(size: int) -> float:
    """Seconds a download of ``size`` bytes may take: :data:`DEADLINE_BASE_S` plus the
    size at :data:`MIN_RATE` bytes per second."""
    return DEADLINE_BASE_S + size / MIN_RATE


def client(timeout: float = READ_TIMEOUT):
    """An httpx client for plain downloads (not the Hub) under the fail-fast policy;
    redirects are left to the caller."""
    httpx = _httpx()
    timeout = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
    return _wrap_client(httpx.Client(follow_redirects=False, timeout=timeout))


class _Transfer:
    """One download's bounds: at most ``limit`` bytes, within a deadline scaled to its size."""

    def __init__(self, url: str, partial: Path, what: str, limit: int, known: bool):
        self.url, self.partial, self.what, self.limit = url, partial, what, limit
        self.known = known  # the limit is the file's own size (not the ceiling)
        self.total: int | None = None  # the size the part should reach, when announced
        self.started = time.monotonic()
        self.budget = deadline_for(limit)

    def expect(self, size: int) -> None:
        """The size announced: past the limit is refused now; else the deadline fits it."""
        if size > self.limit:
            raise self.too_large(size)
        self.budget = deadline_for(size)

    def remaining(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def check(self, size: int) -> None:
        """After each chunk: ``size`` bytes are in the part."""
        if size > self.limit:
            raise self.too_large(None)
        if self.remaining() < 0:
            raise self.late(size)

    def too_large(self, announced: int | None) -> NetworkError:
        self.partial.unlink(missing_ok=True)
        which = (
            "the size its zoo entry states"
            if self.known
            else f"the limit set by {MAX_DOWNLOAD_ENV} (in MB, default {DEFAULT_MAX_DOWNLOAD_MB})"
        )
        size = f"is {announced} bytes, more than" if announced is not None else "went past"
        return NetworkError(
            f"the download of {self.what} from {self.url} {size} {self.limit} bytes ({which}):"
            " refused, and nothing of it was kept. Check the URL"
            + ("" if self.known else f", or raise {MAX_DOWNLOAD_ENV}")
        )

    def late(self, size: int) -> NetworkError:
        return NetworkError(
            f"the download of {self.what} from {self.url} did not finish within its deadline "
            f"of {round(self.budget, 1):g} s ({DEADLINE_BASE_S:g} s plus 1 s per "
            f"{MIN_RATE / 1000:g} kB expected): {size} bytes arrived. Run the same command again to resume it "
            f"(the part is kept as {self.partial.name}), or use a faster mirror"
        )


def download(url: str, dest: str | os.PathLike, *, what: str, size: int | None = None) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.incomplete`` left by a cut download.

    Only a complete file is renamed to ``dest`` (atomically); a cut download stays as
    ``dest.incomplete`` and the next call asks the server for the rest (HTTP Range).
    ``file://`` URLs and plain paths are copied (mirrors on a shared disk). At most
    ``size`` bytes (when known, else :func:`max_download_bytes`) are taken, within
    :func:`deadline_for` that size; only http(s) redirects are followed, at most
    :data:`MAX_REDIRECTS`.

    Raises:
        NetworkError: the host cannot be reached, answers with an error status, sends
            too much or too slowly, or the transfer is cut off before the announced size.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    ceiling = max_download_bytes()
    if size is not None and size > ceiling:
        raise NetworkError(
            f"cannot download {what}: its size, {size} bytes, is above the limit on "
            f"downloads ({ceiling >> 20} MB): raise {MAX_DOWNLOAD_ENV} to allow it"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".incomplete")
    transfer = _Transfer(url, partial, what, size or ceiling, size is not None)
    try:
        scheme = urlsplit(url).scheme
    except ValueError as error:
        raise NetworkError(f"cannot download {what}: {url!r} is not a URL ({error})") from None
    if scheme in ("", "file"):
        _copy_local(url, transfer)
    elif scheme in ("http", "https"):
        _fetch(url, transfer)
    else:
        raise NetworkError(
            f"cannot download {what} from {url}: only http(s) and file:// URLs are supported"
        )
    os.replace(partial, dest)
    return dest


def _fetch(url: str, transfer: _Transfer) -> None:
    """Download ``url`` into ``transfer.partial`` (resuming it); a 416 restarts once."""
    httpx = _httpx()
    partial, what = transfer.partial, transfer.what
    try:
        with client(max(0.1, min(READ_TIMEOUT, transfer.remaining()))) as session:
            for attempt in (1, 2):
                offset = partial.stat().st_size if partial.is_file() else 0
                response = _get(session, url, offset, transfer)
                try:
                    if response.status_code == 416 and offset and attempt == 1:
                        partial.unlink(missing_ok=True)  # the part does not fit: restart
                        continue
                    _receive(response, offset, transfer)
                finally:
                    response.close()
                break
    except NetworkError:
        raise
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout) as error:
        if transfer.remaining() < 0:
            raise transfer.late(partial.stat().st_size if partial.is_file() else 0) from None
        raise _cut_off(url, what, partial, transfer.total, error) from None
    except Exception as error:
        if _network_cause(error) is not None:
            raise NetworkError(
                unreachable_message(f"{host_of(url)} to download {what}", error)
            ) from None
        if isinstance(error, (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError)):
            raise NetworkError(f"cannot download {what} from {url}: {_short(error)}") from None
        raise
    if transfer.total is not None and partial.stat().st_size != transfer.total:
        raise _cut_off(url, what, partial, transfer.total, None)


def _get(session, url: str, offset: int, transfer: _Transfer):
    """The streamed answer to GET ``url`` (from byte ``offset``), after http(s) redirects."""
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    here = url
    for _ in range(MAX_REDIRECTS + 1):
        timeout = max(0.1, min(READ_TIMEOUT, transfer.remaining()))
        request = session.build_request("GET", here, headers=headers, timeout=timeout)
        response = session.send(request, stream=True)
        if response.status_code not in _REDIRECTS:
            return response
        response.close()
        location = response.headers.get("Location", "")
        try:
            target = urljoin(here, location)
            scheme = urlsplit(target).scheme
        except ValueError:
            scheme = None
        if not location or scheme not in ("http", "https"):
            raise NetworkError(
                f"cannot download {transfer.what} from {url}: the server redirects to "
                f"{location[:200]!r}; only http(s) redirects are followed"
            )
        here = target
    raise NetworkError(
        f"cannot download {transfer.what} from {url}: more than {MAX_REDIRECTS} redirects "
        "(a redirect loop?). Check the URL"
    )


def _receive(response, offset: int, transfer: _Transfer) -> None:
    """Append the body of ``response`` to the part (``transfer.total``: its announced end)."""
    url, what, partial = transfer.url, transfer.what, transfer.partial
    status = response.status_code
    if not 200 <= status < 300:
        raise NetworkError(
            f"cannot download {what} from {url}: the server answered HTTP {status}. Check "
            "the URL (or the mirror set with PKU_AIGI_COMPRESSAI_URL)"
        )
    if status != 206:  # the server ignores Range: start again
        offset = 0
    length = response.headers.get("Content-Length", "")
    total = transfer.total = offset + int(length) if length.isdigit() else None
    if total is not None:
        transfer.expect(total)
    size = offset
    with open(partial, "ab" if offset else "wb") as handle, _progress(total, offset, what) as bar:
        for chunk in response.iter_raw():  # as received: a cut keeps every byte
            size += len(chunk)
            if size > transfer.limit:
                break
            handle.write(chunk)
            bar.update(len(chunk))
            transfer.check(size)
    transfer.check(size)  # past the limit: the part is deleted


def _cut_off(url, what, partial: Path, total, error) -> NetworkError:
    size = partial.stat().st_size if partial.is_file() else 0
    of = f" of {total}" if total else ""
    because = f" ({_short(error)})" if error is not None else ""
    return NetworkError(
        f"the download of {what} from {url} was cut off after {size}{of} bytes{because}. "
        f"Run the same command again to resume it (the part is kept as {partial.name})"
    )


def _copy_local(url: str, transfer: _Transfer) -> None:
    """Copy a local file (``file://`` URL or path) into the part, at most the limit."""
    what, partial = transfer.what, transfer.partial
    source = Path(unquote(urlsplit(url).path) if url.startswith("file:") else url)
    try:
        mode = source.stat().st_mode
    except (OSError, ValueError):
        raise NetworkError(f"cannot get {what}: {source} does not exist") from None
    if not stat.S_ISREG(mode):
        raise NetworkError(f"cannot get {what}: {source} is not a regular file")
    size = 0
    try:
        with open(source, "rb") as reader, open(partial, "wb") as writer:
            while chunk := reader.read(CHUNK):
                size += len(chunk)
                if size > transfer.limit:
                    break
                writer.write(chunk)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise NetworkError(f"cannot get {what}: cannot read {source}: {_short(error)}") from None
    if size > transfer.limit:
        raise transfer.too_large(None)


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
