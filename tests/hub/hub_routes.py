"""Hub HTTP API: repositories, files, uploads and commits, as ``huggingface_hub`` 2.4.0 calls them.

Uploads follow the LFS path the client takes with ``HF_HUB_DISABLE_XET=1``: preupload → LFS batch → PUT to the
returned ``href`` → NDJSON commit. No Xet headers are ever sent, so downloads stay plain HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from tests.hub.auth import TokenOwner, TokenRegistry, account_id
from tests.hub.cdn import blob_response, signed_url
from tests.hub.models import (
    BranchRequest,
    CommitDeletion,
    CommitFile,
    CommitHeader,
    CommitLfsFile,
    CommitLine,
    CreateRepoRequest,
    DeleteRepoRequest,
    LfsBatchRequest,
    PreuploadRequest,
    RepoSettingsRequest,
    RepoType,
    TagRequest,
)
from tests.hub.store import CommitOp, CommitRecord, FileEntry, Repo, RepoStore, StoreError, parse_front_matter

_KINDS: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX: dict[str, str] = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_JSON = "application/vnd.git-lfs+json"


@dataclass
class HubContext:
    """State the Hub routes share: the store, the tokens and pending LFS uploads."""

    store: RepoStore
    tokens: TokenRegistry
    pending_uploads: dict[str, tuple[str, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    cdn_host: str | None = "localhost"
    """`/resolve/` of an LFS file answers 302 to the CDN under this host name; None serves it directly."""
    cdn_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    tree_page_size: int = 1000
    """Entries per page of a tree listing (the rest follows a `Link: rel="next"` header, as on the Hub)."""


def error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> StoreError:
    """Build the error a route raises; the server turns it into the Hub's error response."""
    return StoreError(status, code, message, headers)


def error_response(err: StoreError) -> JSONResponse:
    """The Hub's error shape: ``{"error": ...}`` plus ``X-Error-Code``/``X-Error-Message`` headers."""
    headers = {"X-Error-Message": err.message, **err.headers}
    if err.code:
        headers["X-Error-Code"] = err.code
    return JSONResponse({"error": err.message}, status_code=err.status, headers=headers)


# ---- auth --------------------------------------------------------------------------------------


def token_owner(ctx: HubContext, request: Request) -> TokenOwner | None:
    """Owner of the request's bearer token; ``None`` without one; 401 for an unknown one.

    Raises
    ------
    StoreError
        401 ``Invalid credentials in Authorization header`` when the token is not valid.
    """
    header = request.headers.get("authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    owner = ctx.tokens.lookup(token.strip()) if scheme.lower() == "bearer" else None
    if owner is None:
        raise error(401, "Invalid credentials in Authorization header")
    return owner


def require_owner(ctx: HubContext, request: Request) -> TokenOwner:
    """Like :func:`token_owner` but a missing token is a 401 too."""
    owner = token_owner(ctx, request)
    if owner is None:
        raise error(401, "You must be authenticated to access this resource.")
    return owner


def readable_repo(ctx: HubContext, request: Request, repo_type: RepoType, repo_id: str) -> Repo:
    """The repository if the caller may read it; otherwise the Hub's 401/404 ``RepoNotFound``."""
    owner = token_owner(ctx, request)
    repo = ctx.store.get(repo_type, repo_id)
    visible = repo is not None and (not repo.private or (owner and repo.namespace in owner.namespaces()))
    if not visible or repo is None:
        # The Hub answers 401 to anonymous and 404 to authenticated callers, for missing and private alike.
        raise error(401 if owner is None else 404, "Repository not found", "RepoNotFound")
    return repo


def writable_repo(
    ctx: HubContext, request: Request, repo_type: RepoType, repo_id: str
) -> tuple[Repo, TokenOwner]:
    """The repository and the caller if the caller may write to it; 401/403/404 otherwise."""
    owner = require_owner(ctx, request)
    repo = readable_repo(ctx, request, repo_type, repo_id)
    if not owner.can_write(repo.namespace):
        raise error(403, f"You don't have the rights to write to {repo_id}")
    return repo, owner


def check_gate(ctx: HubContext, request: Request, repo: Repo) -> None:
    """Refuse file access to a gated repository for users without granted access (``GatedRepo``)."""
    if not repo.gated:
        return
    owner = token_owner(ctx, request)
    if owner is not None and (repo.namespace in owner.namespaces() or owner.user in repo.access):
        return
    message = (
        f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated."
    )
    raise error(401 if owner is None else 403, message, "GatedRepo")


def repo_type_of(kind: str) -> RepoType:
    """``models`` → ``model`` etc.; 404 for anything else."""
    if kind not in _KINDS:
        raise error(404, "Not Found")
    return _KINDS[kind]


# ---- JSON shapes -------------------------------------------------------------------------------


def file_json(entry: FileEntry) -> dict[str, Any]:
    """A file as the tree and paths-info endpoints list it."""
    out: dict[str, Any] = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": entry.path}
    if entry.lfs:
        pointer_size = len(
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.sha256}\nsize {entry.size}\n"
        )
        out["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": pointer_size}
    return out


def folder_json(path: str, files: dict[str, FileEntry]) -> dict[str, Any]:
    """A folder; its oid hashes the entries below it, so it changes when they do."""
    prefix = path + "/"
    digest = hashlib.sha1()
    for p in sorted(p for p in files if p.startswith(prefix)):
        digest.update(f"{p}\0{files[p].git_oid}\n".encode())
    return {"type": "directory", "oid": digest.hexdigest(), "size": 0, "path": path}


def last_commit_json(
    ctx: HubContext, repo: Repo, commit: CommitRecord, path: str, folder: bool
) -> dict[str, Any]:
    """Newest commit of ``commit``'s history that changed ``path`` (a file, or anything under a folder)."""

    def view(c: CommitRecord) -> dict[str, str]:
        if folder:
            return {p: e.git_oid for p, e in c.files.items() if p.startswith(path + "/")}
        entry = c.files.get(path)
        return {path: entry.git_oid} if entry else {}

    history = ctx.store.history(repo, commit.id)
    found = history[-1]
    for newer, older in zip(history, [*history[1:], None], strict=True):
        if older is None or view(newer) != view(older):
            found = newer
            break
    return {"id": found.id, "title": found.title, "date": found.date}


def tree_entry_json(
    ctx: HubContext, repo: Repo, commit: CommitRecord, path: str, expand: bool
) -> dict[str, Any] | None:
    """A file or folder at ``path``, or ``None`` if neither exists."""
    entry = commit.files.get(path)
    if entry is not None:
        out = file_json(entry)
    elif any(p.startswith(path + "/") for p in commit.files):
        out = folder_json(path, commit.files)
    else:
        return None
    if expand:
        out["lastCommit"] = last_commit_json(ctx, repo, commit, path, folder=entry is None)
        if entry is not None:
            out["securityFileStatus"] = {
                "status": "safe",
                "avScan": {"virusFound": False},
                "pickleImportScan": None,
            }
    return out


def repo_info_json(ctx: HubContext, repo: Repo, commit: CommitRecord, blobs: bool) -> dict[str, Any]:
    """Body of ``GET /api/{models|datasets}/{repo}[/revision/{rev}]``."""
    siblings = []
    for path in sorted(commit.files):
        entry = commit.files[path]
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=entry.size, blobId=entry.git_oid)
            if entry.lfs:
                lfs = file_json(entry)["lfs"]
                sibling["lfs"] = {
                    "sha256": entry.sha256,
                    "size": entry.size,
                    "pointerSize": lfs["pointerSize"],
                }
        siblings.append(sibling)
    try:
        card = ctx.store.card_data(commit)
    except yaml.YAMLError:
        card = None
    tags = list(card.get("tags") or []) if card and isinstance(card.get("tags"), list) else []
    info: dict[str, Any] = {
        "_id": account_id(f"{repo.repo_type}:{repo.repo_id}"),
        "id": repo.repo_id,
        "author": repo.namespace,
        "sha": commit.id,
        "lastModified": commit.date,
        "createdAt": repo.created_at,
        "private": repo.private,
        "gated": repo.gated,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": tags,
        "siblings": siblings,
        "usedStorage": sum(e.size for e in commit.files.values()),
    }
    if card is not None:
        info["cardData"] = card
    if repo.repo_type == "model":
        info["modelId"] = repo.repo_id
        info["spaces"] = []
        if card:
            for key in ("library_name", "pipeline_tag"):
                if key in card:
                    info[key] = card[key]
        config = ctx.store.model_config(commit)
        if config is not None:
            info["config"] = config
        params = ctx.store.safetensors_parameters(commit)
        if params is not None:
            info["safetensors"] = {"parameters": params, "total": sum(params.values())}
    elif repo.repo_type == "dataset":
        info.update(description="", citation="", paperswithcode_id=None)
    return info


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _raw_after(request: Request, marker: str) -> tuple[str, str]:
    """Split the raw (still-quoted) path after ``marker`` into revision and rest, then unquote both.

    The client quotes revisions with ``safe=""``, so a branch like ``refs/pr/1`` arrives as one segment only
    in the raw path.
    """
    raw = request.scope.get("raw_path", request.url.path.encode()).decode()
    tail = raw.split(marker, 1)[1]
    revision, _, rest = tail.partition("/")
    return unquote(revision), unquote(rest)


# ---- routes ------------------------------------------------------------------------------------


def build_hub_router(ctx: HubContext) -> APIRouter:
    """Create the router serving the Hub API from ``ctx``.

    Parameters
    ----------
    ctx : HubContext
        Store and tokens to serve.

    Returns
    -------
    APIRouter
        Routes for ``/api/...``, ``/{repo}/resolve/...`` and the LFS endpoints.
    """
    router = APIRouter()
    store = ctx.store

    @router.get("/api/whoami-v2")
    def whoami(request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        token = header.partition(" ")[2].strip()
        owner = ctx.tokens.lookup(token) if token else None
        if owner is None:
            raise error(401, "Invalid credentials in Authorization header")
        return JSONResponse(owner.whoami(token_name=f"token-{token[-4:]}"))

    @router.post("/api/repos/create")
    async def create_repo(request: Request) -> JSONResponse:
        owner = require_owner(ctx, request)
        body = _parse(CreateRepoRequest, await request.body())
        namespace = body.organization or owner.user
        if not owner.can_write(namespace):
            raise error(
                403, f"You don't have the rights to create a {body.type} under the namespace {namespace}"
            )
        repo_id = f"{namespace}/{body.name}"
        private = body.private if body.private is not None else body.visibility == "private"
        base = str(request.base_url).rstrip("/")
        url = f"{base}/{_PREFIX[body.type]}{repo_id}"
        try:
            repo = store.create_repo(body.type, repo_id, private=private)
        except StoreError:
            # Like the Hub, the conflict carries the repo's URL: `create_repo(exist_ok=True)` reads it.
            message = f"You already created this {body.type} repo: {repo_id}"
            return JSONResponse(
                {"error": message, "url": url}, status_code=409, headers={"X-Error-Message": message}
            )
        return JSONResponse({"url": url, "name": repo_id, "id": account_id(f"{repo.repo_type}:{repo_id}")})

    @router.delete("/api/repos/delete")
    async def delete_repo(request: Request) -> Response:
        owner = require_owner(ctx, request)
        body = _parse(DeleteRepoRequest, await request.body())
        repo_id = f"{body.organization or owner.user}/{body.name}"
        writable_repo(ctx, request, body.type, repo_id)
        store.delete_repo(body.type, repo_id)
        return Response(status_code=200)

    @router.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> JSONResponse:
        content = json.loads(await request.body() or b"{}").get("content", "")
        try:
            parse_front_matter(content)
        except yaml.YAMLError as exc:
            return JSONResponse(
                {"errors": [{"message": f"Invalid YAML: {exc}"}], "warnings": []}, status_code=400
            )
        return JSONResponse({"errors": [], "warnings": []})

    @router.get("/api/{kind}/{namespace}/{name}")
    def repo_info(kind: str, namespace: str, name: str, request: Request) -> JSONResponse:
        return _repo_info(kind, f"{namespace}/{name}", "main", request)

    @router.get("/api/{kind}/{namespace}/{name}/revision/{revision:path}")
    def repo_info_at(kind: str, namespace: str, name: str, revision: str, request: Request) -> JSONResponse:
        return _repo_info(kind, f"{namespace}/{name}", revision, request)

    def _repo_info(kind: str, repo_id: str, revision: str, request: Request) -> JSONResponse:
        repo = readable_repo(ctx, request, repo_type_of(kind), repo_id)
        commit = store.resolve(repo, revision)
        return JSONResponse(repo_info_json(ctx, repo, commit, _truthy(request.query_params.get("blobs"))))

    @router.get("/api/{kind}/{namespace}/{name}/tree/{rest:path}")
    def tree(kind: str, namespace: str, name: str, rest: str, request: Request) -> JSONResponse:
        repo = readable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        revision, path = _raw_after(request, "/tree/")
        path = path.strip("/")
        commit = store.resolve(repo, revision)
        recursive = _truthy(request.query_params.get("recursive"))
        expand = _truthy(request.query_params.get("expand"))
        prefix = f"{path}/" if path else ""
        below = [p for p in commit.files if p.startswith(prefix)]
        if path and not below:
            raise error(404, f"Path {path} not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        children: set[str] = set()
        for p in below:
            parts = p[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, depth + 1):
                children.add(prefix + "/".join(parts[:i]))
        paths = sorted(children)
        start = int(request.query_params.get("cursor", "0"))
        end = start + ctx.tree_page_size
        headers = {}
        if end < len(paths):
            headers["Link"] = f'<{request.url.include_query_params(cursor=end)}>; rel="next"'
        entries = [tree_entry_json(ctx, repo, commit, p, expand) for p in paths[start:end]]
        return JSONResponse([e for e in entries if e is not None], headers=headers)

    @router.post("/api/{kind}/{namespace}/{name}/paths-info/{revision:path}")
    async def paths_info(
        kind: str, namespace: str, name: str, revision: str, request: Request
    ) -> JSONResponse:
        repo = readable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        commit = store.resolve(repo, revision)
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            body = json.loads(raw or b"{}")
            paths, expand = list(body.get("paths", [])), bool(body.get("expand", False))
        else:
            form = parse_qs(raw.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), _truthy((form.get("expand") or ["false"])[0])
        entries = [tree_entry_json(ctx, repo, commit, p.strip("/"), expand) for p in paths]
        return JSONResponse([e for e in entries if e is not None])

    @router.get("/api/{kind}/{namespace}/{name}/refs")
    def refs(kind: str, namespace: str, name: str, request: Request) -> JSONResponse:
        repo = readable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        out: dict[str, Any] = {
            "branches": [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": c}
                for b, c in sorted(repo.branches.items())
            ],
            "converts": [],
            "tags": [
                {"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in sorted(repo.tags.items())
            ],
        }
        if _truthy(request.query_params.get("include_prs")):
            out["pullRequests"] = []
        return JSONResponse(out)

    @router.get("/api/{kind}/{namespace}/{name}/commits/{revision:path}")
    def commits(kind: str, namespace: str, name: str, revision: str, request: Request) -> JSONResponse:
        repo = readable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        return JSONResponse(
            [
                {
                    "id": c.id,
                    "title": c.title,
                    "message": c.message,
                    "authors": [{"user": c.author, "avatar": ""}],
                    "date": c.date,
                }
                for c in store.history(repo, revision)
            ]
        )

    @router.post("/api/{kind}/{namespace}/{name}/branch/{branch:path}")
    async def create_branch(kind: str, namespace: str, name: str, branch: str, request: Request) -> Response:
        repo, _ = writable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        body = _parse(BranchRequest, await request.body())
        store.create_branch(repo, branch, body.starting_point)
        return Response(status_code=200)

    @router.delete("/api/{kind}/{namespace}/{name}/branch/{branch:path}")
    def delete_branch(kind: str, namespace: str, name: str, branch: str, request: Request) -> Response:
        repo, _ = writable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        store.delete_branch(repo, branch)
        return Response(status_code=200)

    @router.post("/api/{kind}/{namespace}/{name}/tag/{revision:path}")
    async def create_tag(kind: str, namespace: str, name: str, revision: str, request: Request) -> Response:
        repo, _ = writable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        body = _parse(TagRequest, await request.body())
        store.create_tag(repo, body.tag, revision)
        return Response(status_code=200)

    @router.put("/api/{kind}/{namespace}/{name}/settings")
    async def settings(kind: str, namespace: str, name: str, request: Request) -> JSONResponse:
        repo, _ = writable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        body = _parse(RepoSettingsRequest, await request.body())
        private = (
            body.private
            if body.private is not None
            else (None if body.visibility is None else body.visibility == "private")
        )
        store.update_settings(repo.repo_type, repo.repo_id, private=private, gated=body.gated)
        return JSONResponse({})

    @router.post("/api/{kind}/{namespace}/{name}/preupload/{revision:path}")
    async def preupload(
        kind: str, namespace: str, name: str, revision: str, request: Request
    ) -> JSONResponse:
        repo, _ = writable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        head = store.resolve(repo, revision)
        body = _parse(PreuploadRequest, await request.body())
        files = []
        for f in body.files:
            existing = head.files.get(f.path)
            files.append(
                {
                    "path": f.path,
                    "uploadMode": store.upload_mode(f.path, f.size, base64.b64decode(f.sample)),
                    "shouldIgnore": False,
                    "oid": None
                    if existing is None
                    else (existing.sha256 if existing.lfs else existing.git_oid),
                }
            )
        return JSONResponse({"files": files, "commitOid": head.id})

    @router.post("/api/{kind}/{namespace}/{name}/commit/{revision:path}")
    async def commit(kind: str, namespace: str, name: str, revision: str, request: Request) -> JSONResponse:
        repo, owner = writable_repo(ctx, request, repo_type_of(kind), f"{namespace}/{name}")
        if _truthy(request.query_params.get("create_pr")):
            raise error(400, "The Hub stand-in does not support pull requests (create_pr)")
        header, ops = _parse_commit(await request.body())
        record = store.commit(
            repo,
            revision,
            ops,
            title=header.summary,
            message=header.description,
            author=owner.user,
            parent_commit=header.parent_commit,
        )
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "success": True,
                "commitOid": record.id,
                "commitUrl": f"{base}/{_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{record.id}",
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    # ---- LFS ------------------------------------------------------------------------------------

    # Dataset and Space routes first: a model route would otherwise read "datasets" as a namespace.
    for url_prefix, kind_type in (("/datasets", "dataset"), ("/spaces", "space"), ("", "model")):
        _add_lfs_routes(router, ctx, url_prefix, kind_type)  # type: ignore[arg-type]
        _add_resolve_routes(router, ctx, url_prefix, kind_type)  # type: ignore[arg-type]

    @router.put("/__lfs/{nonce}")
    async def lfs_upload(nonce: str, request: Request) -> Response:
        with ctx.lock:
            expected = ctx.pending_uploads.get(nonce)
        if expected is None:
            raise error(403, "Unknown or expired upload URL")
        data = await request.body()
        oid, size = expected
        if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
            raise error(400, f"Uploaded content does not match oid {oid} / size {size}")
        store.put_blob(data)
        with ctx.lock:
            ctx.pending_uploads.pop(nonce, None)
        return Response(status_code=200)

    return router


def _add_lfs_routes(router: APIRouter, ctx: HubContext, prefix: str, repo_type: RepoType) -> None:
    @router.post(prefix + "/{namespace}/{repo_git}/info/lfs/objects/batch")
    async def lfs_batch(namespace: str, repo_git: str, request: Request) -> JSONResponse:
        repo_id = f"{namespace}/{repo_git.removesuffix('.git')}"
        writable_repo(ctx, request, repo_type, repo_id)
        body = _parse(LfsBatchRequest, await request.body())
        if body.operation != "upload":
            raise error(400, "The Hub stand-in only serves LFS uploads; download through /resolve/")
        base = str(request.base_url).rstrip("/")
        objects = []
        for obj in body.objects:
            item: dict[str, Any] = {"oid": obj.oid, "size": obj.size, "authenticated": True}
            if not ctx.store.has_blob(obj.oid, obj.size):
                nonce = secrets.token_hex(16)
                with ctx.lock:
                    ctx.pending_uploads[nonce] = (obj.oid, obj.size)
                item["actions"] = {
                    "upload": {"href": f"{base}/__lfs/{nonce}", "header": {}, "expires_in": 3600},
                    "verify": {
                        "href": f"{base}{prefix}/{repo_id}.git/info/lfs/objects/verify",
                        "header": {},
                        "expires_in": 3600,
                    },
                }
            objects.append(item)
        return JSONResponse(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, media_type=LFS_JSON
        )

    @router.post(prefix + "/{namespace}/{repo_git}/info/lfs/objects/verify")
    async def lfs_verify(namespace: str, repo_git: str, request: Request) -> JSONResponse:
        writable_repo(ctx, request, repo_type, f"{namespace}/{repo_git.removesuffix('.git')}")
        body = json.loads(await request.body() or b"{}")
        if not ctx.store.has_blob(str(body.get("oid")), body.get("size")):
            raise error(404, f"Object {body.get('oid')} was not uploaded")
        return JSONResponse({"message": "ok"}, media_type=LFS_JSON)


def _add_resolve_routes(router: APIRouter, ctx: HubContext, prefix: str, repo_type: RepoType) -> None:
    @router.api_route(prefix + "/{namespace}/{name}/resolve/{rest:path}", methods=["GET", "HEAD"])
    def resolve(namespace: str, name: str, rest: str, request: Request) -> Response:
        repo = readable_repo(ctx, request, repo_type, f"{namespace}/{name}")
        check_gate(ctx, request, repo)
        revision, path = _raw_after(request, "/resolve/")
        commit = ctx.store.resolve(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            raise error(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.etag}"'}
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
            if ctx.cdn_host:  # like the Hub: the bytes come from the CDN, the metadata from this answer
                headers["Location"] = signed_url(request, ctx.cdn_host, ctx.cdn_secret, entry.sha256)
                return Response(status_code=302, headers=headers)
        return blob_response(request, ctx.store, entry.sha256, entry.size, headers)


def _parse(model: Any, raw: bytes) -> Any:
    """Validate a JSON body; 400 naming the problem when it does not fit."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise error(400, f"Invalid request body: {exc.errors(include_url=False)}") from exc


def _parse_commit(raw: bytes) -> tuple[CommitHeader, list[CommitOp]]:
    """Decode an NDJSON commit into its header and operations."""
    header: CommitHeader | None = None
    ops: list[CommitOp] = []
    try:
        for line in raw.splitlines():
            if not line.strip():
                continue
            item = CommitLine.model_validate_json(line)
            if item.key == "header":
                header = CommitHeader.model_validate(item.value)
            elif item.key == "file":
                f = CommitFile.model_validate(item.value)
                data = base64.b64decode(f.content) if f.encoding == "base64" else f.content.encode()
                ops.append(CommitOp("file", f.path, data=data))
            elif item.key == "lfsFile":
                lf = CommitLfsFile.model_validate(item.value)
                ops.append(CommitOp("lfsFile", lf.path, sha256=lf.oid, size=lf.size))
            else:
                d = CommitDeletion.model_validate(item.value)
                ops.append(CommitOp(item.key, d.path))
    except (ValidationError, ValueError) as exc:
        raise error(400, f"Invalid commit payload: {exc}") from exc
    if header is None:
        raise error(400, "Invalid commit payload: the first line must be the header")
    return header, ops
