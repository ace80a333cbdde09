"""Web pages as rows: fetch http(s) URLs with urllib and keep their visible text (stdlib only).

The server fetches what a client names, so every connection goes through ``forgeline.outbound``:
loopback, link-local, private and other non-public addresses are refused (after DNS, on every
redirect, and the socket connects to the address that was checked) unless the operator allows
them (FORGELINE_HTTP_ALLOW). Proxies from the environment are not used: through a proxy the
check would see the proxy, not where it connects.
"""

from __future__ import annotations

import http.client
import re
import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlsplit

import pyarrow as pa
from pydantic import Field

from forgeline import outbound
from forgeline.contracts.base import PluginConfig
from forgeline.contracts.loaders import Loader, LoadSource
from forgeline.errors import InvalidArgument, ResourceExhausted, Unavailable, excerpt

_SCHEMES = ("http", "https")
_USER_AGENT = "forgeline-http-loader"
# Elements whose text a reader never sees.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "title", "svg"})
# Elements that start or end a block of text (a paragraph row in "paragraph" mode).
_BLOCKS = frozenset(
    "address article aside blockquote body br dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr html li main nav ol p pre section table td th tr ul".split()
)


@dataclass(frozen=True)
class _Page:
    url: str
    blocks: list[str]
    size: int


class HttpLoader(Loader):
    """Visible text of web pages: one URL, or a file listing URLs (one per line, # comments)."""

    name = "http"
    reads_urls = True

    class Config(PluginConfig):
        mode: Literal["page", "paragraph"] = Field(
            "page", description="One row per page, or one row per block of text (paragraph)."
        )
        timeout_seconds: float = Field(
            30.0, gt=0, le=600, description="Connect and read timeout per page."
        )
        max_pages: int = Field(100, ge=1, description="Most URLs one load may fetch.")
        max_bytes_per_page: int = Field(
            10 * 1024**2, ge=1, description="Largest page body accepted, in bytes."
        )
        skip_failed: bool = Field(
            False,
            description="Skip pages that fail to fetch or are not HTML/text instead of failing "
            "the whole load (a refused address always fails it: that is the operator's policy).",
        )
        concurrency: int = Field(4, ge=1, le=32, description="Pages fetched at the same time.")

    def load(self, source: LoadSource) -> pa.Table:
        urls = _urls(source)
        if not urls:
            raise InvalidArgument(f"{source.path}: lists no URLs", reason="EMPTY_DATASET")
        if len(urls) > self.config.max_pages:
            raise ResourceExhausted(
                f"{source.path} lists {len(urls)} URLs; config.max_pages is "
                f"{self.config.max_pages}",
                reason="TOO_MANY_PAGES",
            )
        opener = _opener(outbound.AllowList.parse(source.http_allow))
        with ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(urls))) as pool:
            fetched_pages = pool.map(lambda url: self._fetch_or_skip(opener, url), urls)
            pages = [page for page in fetched_pages if page is not None]
        fetched = sum(page.size for page in pages)
        if fetched > source.max_bytes:
            raise ResourceExhausted(
                f"fetched {fetched} bytes, over the limit of {source.max_bytes}",
                reason="TOO_MANY_BYTES",
            )
        if self.config.mode == "page":
            rows = [("\n".join(page.blocks), page.url) for page in pages]
        else:
            rows = [(block, page.url) for page in pages for block in page.blocks]
        if not rows:
            raise InvalidArgument("no text in any page fetched", reason="EMPTY_DATASET")
        if len(rows) > source.max_rows:
            raise ResourceExhausted(
                f"{len(rows)} rows is over the limit of {source.max_rows} rows",
                reason="TOO_MANY_ROWS",
            )
        texts, page_urls = zip(*rows, strict=True)
        return pa.table({"text": list(texts), "url": list(page_urls)})

    def _fetch_or_skip(self, opener: urllib.request.OpenerDirector, url: str) -> _Page | None:
        # A refused address (PermissionDenied) is never skipped: it is the operator's policy,
        # not a page that failed.
        try:
            return self._fetch(opener, url)
        except (Unavailable, InvalidArgument):
            if self.config.skip_failed:
                return None
            raise

    def _fetch(self, opener: urllib.request.OpenerDirector, url: str) -> _Page:
        limit = self.config.max_bytes_per_page
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        try:
            with opener.open(request, timeout=self.config.timeout_seconds) as response:
                body = response.read(limit + 1)
                content_type = response.headers.get_content_type()
                charset = response.headers.get_content_charset() or "utf-8"
        except urllib.error.HTTPError as exc:
            raise _fetch_failed(url, f"HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, TLS, timeout
            why = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise _fetch_failed(url, str(why or type(exc).__name__)) from exc
        except http.client.HTTPException as exc:  # a port where no HTTP server answers
            raise _fetch_failed(
                url, f"no HTTP answer ({type(exc).__name__}: {excerpt(str(exc))})"
            ) from exc
        if len(body) > limit:
            raise ResourceExhausted(
                f"{url}: the page is larger than config.max_bytes_per_page ({limit} bytes)",
                reason="PAGE_TOO_LARGE",
            )
        try:
            text = body.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            text = body.decode("utf-8", errors="replace")
        if content_type in ("text/html", "application/xhtml+xml"):
            blocks = visible_text_blocks(text)
        elif content_type.startswith("text/"):
            blocks = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
        else:
            raise InvalidArgument(
                f"{url}: serves {content_type}, not HTML or text", reason="UNSUPPORTED_CONTENT"
            )
        return _Page(url, blocks, len(body))


def visible_text_blocks(html: str) -> list[str]:
    """The text a reader sees in ``html``, one string per block (paragraph, heading, cell...)."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.blocks


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self._end_block()

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(self._hidden - 1, 0)
        elif tag in _BLOCKS:
            self._end_block()

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self._end_block()

    def _end_block(self) -> None:
        text = " ".join("".join(self._parts).split())
        if text:
            self.blocks.append(text)
        self._parts = []


def _fetch_failed(url: str, why: str) -> Unavailable:
    return Unavailable(f"{url[:200]}: {why}", reason="FETCH_FAILED", metadata={"url": url[:200]})


def _opener(allow: outbound.AllowList) -> urllib.request.OpenerDirector:
    """urllib with every connection checked by ``forgeline.outbound`` and no proxies."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        _CheckedHTTPHandler(allow),
        _CheckedHTTPSHandler(allow),
        _HttpOnlyRedirects,
    )


class _CheckedHTTPConnection(http.client.HTTPConnection):
    """Connects only to an address ``forgeline.outbound`` let through."""

    def __init__(self, *args, allow: outbound.AllowList, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._allow = allow

    def connect(self) -> None:
        # http.client opens its socket through this hook (HTTPSConnection then wraps it in TLS
        # for the URL's own host name, so certificates are checked against the name, not the IP).
        self._create_connection = self._checked_connection
        super().connect()

    def _checked_connection(self, address, timeout=None, source_address=None):
        host, port = address
        return outbound.connect(host, port, self._allow, "source", timeout, source_address)


class _CheckedHTTPSConnection(_CheckedHTTPConnection, http.client.HTTPSConnection):
    pass


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow: outbound.AllowList) -> None:
        super().__init__()
        self._allow = allow

    def http_open(self, req):  # the stdlib signature
        return self.do_open(_CheckedHTTPConnection, req, allow=self._allow)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow: outbound.AllowList) -> None:
        super().__init__()
        self._allow = allow
        self._tls = ssl.create_default_context()

    def https_open(self, req):  # the stdlib signature
        return self.do_open(_CheckedHTTPSConnection, req, context=self._tls, allow=self._allow)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects only to http(s) URLs (urllib would also follow ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # the stdlib signature
        if urlsplit(newurl).scheme not in _SCHEMES:
            raise urllib.error.HTTPError(
                newurl, code, f"redirect to a non-http(s) URL {newurl}", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _urls(source: LoadSource) -> list[str]:
    """The URLs to fetch: ``source.url``, or the lines of the file at ``source.path``."""
    if source.url:
        problem = _url_problem(source.url)
        if problem:
            raise InvalidArgument.for_field("source", problem)
        return [source.url]
    if source.path is None:
        raise InvalidArgument.for_field("source", "give an http(s) URL or a file listing URLs")
    path = source.inside_roots(source.path)
    source.file_size()
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{path}: not UTF-8 text: {exc}", reason="MALFORMED_ROW") from exc
    urls = []
    for number, line in enumerate(lines, start=1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        problem = _url_problem(url)
        if problem:
            raise InvalidArgument(f"{path}: line {number}: {problem}", reason="MALFORMED_ROW")
        urls.append(url)
    return urls


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        return f"{excerpt(url)} is not a valid URL ({exc})"
    if parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        return f"{excerpt(url)} is not an http(s) URL"
    return None
