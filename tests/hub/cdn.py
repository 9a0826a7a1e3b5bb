"""File bytes as the Hub serves them: `/resolve/` answers an LFS file with a 302 to a signed CDN URL.

The CDN is this same server under another host name (``localhost`` for ``127.0.0.1``), so the client treats it
as the Hub does ``cdn-lfs.hf.co``: another origin, reached without the token, its metadata taken from the 302.
The URL is signed (HMAC of the blob and expiry with a per-server secret) and expires after an hour, so a
private or gated file is only reachable through a `/resolve/` that checked access.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from tests.hub.store import RepoStore

CDN_PATH = "/__cdn/"
URL_TTL_S = 3600


def signature(secret: bytes, sha256: str, expires: int) -> str:
    """The signature of a CDN URL for blob ``sha256`` valid until ``expires`` (Unix time)."""
    return hmac.new(secret, f"{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(request: Request, host: str, secret: bytes, sha256: str) -> str:
    """The CDN URL of blob ``sha256``: this server's port under ``host``, signed for an hour."""
    expires = int(time.time()) + URL_TTL_S
    url = request.url.replace(
        hostname=host,
        path=CDN_PATH + sha256,
        query=f"expires={expires}&sig={signature(secret, sha256, expires)}",
    )
    return str(url)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=`` range; ``None`` when unsatisfiable (multi-ranges are not supported)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    if first == "":
        n = int(last)
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def blob_response(
    request: Request, store: RepoStore, sha256: str, size: int, headers: dict[str, str]
) -> Response:
    """The blob (or the one byte range asked for) with ``headers``; 416 for a range it does not hold."""
    headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    start, end, status = 0, size - 1, 200
    range_header = request.headers.get("range")
    if range_header:
        parsed = parse_range(range_header, size)
        if parsed is None:
            headers["Content-Range"] = f"bytes */{size}"
            return Response(status_code=416, headers=headers)
        start, end = parsed
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(end - start + 1, 0))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    body: Iterator[bytes] = store.read_range(sha256, start, end) if size else iter([b""])
    return StreamingResponse(body, status_code=status, headers=headers)


def build_cdn_router(store: RepoStore, secret: bytes) -> APIRouter:
    """``GET|HEAD /__cdn/{sha256}?expires=&sig=``: the blob, for a valid unexpired signature; no token needed."""
    router = APIRouter()

    @router.api_route(CDN_PATH + "{sha256}", methods=["GET", "HEAD"])
    def blob(sha256: str, request: Request) -> Response:
        expires = request.query_params.get("expires", "")
        sig = request.query_params.get("sig", "")
        valid = expires.isdigit() and hmac.compare_digest(sig, signature(secret, sha256, int(expires)))
        if not valid or int(expires) < time.time() or not store.has_blob(sha256):
            return Response(
                "<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml"
            )
        size = store.blob_path(sha256).stat().st_size
        return blob_response(request, store, sha256, size, {"ETag": f'"{sha256}"'})

    return router
