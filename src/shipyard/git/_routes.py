"""The JSON API: repositories, their content, and the event feed.

Content handlers are plain ``def`` (they wait on git processes, in the thread pool);
the delete and the feed's long poll are ``async``. URL routing of repository names is
described in :mod:`shipyard.git._routing`.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from shipyard.git import _routing  # noqa: F401  (registers the shipyard_repo convertor)
from shipyard.git._content import (
    blob_at,
    changed_paths,
    commit_info,
    file_set,
    read_refs,
    stream_blob,
    tree_entries,
)
from shipyard.git._models import (
    CommitOut,
    CompareOut,
    EventOut,
    EventsOut,
    FilesOut,
    PersonOut,
    RefsOut,
    RepoCreate,
    RepoOut,
    TreeEntryOut,
    TreeOut,
)
from shipyard.git._repos import RepoRecord
from shipyard.git._service import EVENTS_TOPIC, GitService, Svc
from shipyard.git._tables import events
from shipyard.service import Auth, long_poll, read_events

__all__ = ["router"]

router = APIRouter()

_MAX_WAIT = 60.0
# Event ids are a BIGINT: a cursor past the largest is refused rather than overflowing
# the database driver (a 500).
_MAX_EVENT_ID = 2**63 - 1
_Name = Annotated[str, PathParam(description="'name' or 'owner/name', the slash as is (not %2F)")]
_Rev = Annotated[str, Query(description="a branch, tag, sha or other revision", max_length=1024)]
_Path = Annotated[str, Query(description="a path from the repository's root", max_length=4096)]


def _out(svc: GitService, repo: RepoRecord) -> RepoOut:
    return RepoOut(
        name=repo.name,
        description=repo.description,
        created_at=repo.created_at,
        default_branch=repo.default_branch,
        clone_url=svc.clone_url(repo.name),
    )


# -- repositories -----------------------------------------------------------------


@router.post("/repos", status_code=201, tags=["repositories"], summary="Create a repository")
def create_repo(body: RepoCreate, claims: Auth, svc: Svc) -> RepoOut:
    claims.require("repos:write")
    return _out(svc, svc.store.create(body.name, body.description))


@router.get("/repos", tags=["repositories"], summary="List repositories by name")
def list_repos(
    claims: Auth,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str, Query(description="list names after this one (paging)", max_length=255)] = "",
) -> list[RepoOut]:
    return [_out(svc, r) for r in svc.store.page(after, limit)]


@router.get("/repos/{name:shipyard_repo}", tags=["repositories"], summary="One repository")
def get_repo(name: _Name, claims: Auth, svc: Svc) -> RepoOut:
    return _out(svc, svc.readable(claims, name))


@router.delete(
    "/repos/{name:shipyard_repo}", status_code=204, tags=["repositories"],
    summary="Delete a repository (emits repo.deleted)",
)
async def delete_repo(name: _Name, claims: Auth, svc: Svc) -> Response:
    claims.require("repos:write")
    svc.authorize(claims, name, write=True)
    await anyio.to_thread.run_sync(svc.store.get, name)
    try:
        held = await svc.locks.acquire(name, svc.store.path(name))
    except FileNotFoundError:  # a row without a directory: nothing to wait for
        held = None
    try:
        await anyio.to_thread.run_sync(svc.store.delete, name)
    finally:
        if held is not None:
            held.release()
        svc.locks.forget(name)
    return Response(status_code=204)


# -- content ----------------------------------------------------------------------


@router.get("/repos/{name:shipyard_repo}/refs", tags=["content"], summary="Every ref and HEAD")
def get_refs(name: _Name, claims: Auth, svc: Svc) -> RefsOut:
    svc.readable(claims, name)
    found, head = read_refs(svc.store.path(name))
    return RefsOut(refs=found, head=head)


@router.get("/repos/{name:shipyard_repo}/commits/{rev:path}", tags=["content"], summary="One commit")
def get_commit(name: _Name, rev: str, claims: Auth, svc: Svc) -> CommitOut:
    svc.readable(claims, name)
    info = commit_info(svc.store.path(name), rev)
    return CommitOut(
        sha=info.sha,
        tree=info.tree,
        parents=info.parents,
        message=info.message,
        author=PersonOut(name=info.author.name, email=info.author.email, date=info.author.date),
        committer=PersonOut(
            name=info.committer.name, email=info.committer.email, date=info.committer.date
        ),
    )


@router.get("/repos/{name:shipyard_repo}/tree", tags=["content"], summary="A directory's entries")
def get_tree(
    name: _Name, claims: Auth, svc: Svc, rev: _Rev = "HEAD", path: _Path = "", recursive: bool = False
) -> TreeOut:
    svc.readable(claims, name)
    commit, tree, entries = tree_entries(svc.store.path(name), rev, path, recursive)
    return TreeOut(
        sha=tree,
        commit=commit,
        entries=[
            TreeEntryOut(path=e.path, type=e.type, mode=e.mode, sha=e.sha, size=e.size)  # type: ignore[arg-type]
            for e in entries
        ],
    )


@router.get(
    "/repos/{name:shipyard_repo}/blob", tags=["content"], summary="A file's raw bytes",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_blob(name: _Name, claims: Auth, svc: Svc, rev: _Rev = "HEAD", path: _Path = "") -> StreamingResponse:
    svc.readable(claims, name)
    git_dir = svc.store.path(name)
    obj = blob_at(git_dir, rev, path)
    return StreamingResponse(
        stream_blob(git_dir, obj.sha),
        media_type="application/octet-stream",
        headers={"Content-Length": str(obj.size), "X-Git-Object": obj.sha},
    )


@router.get(
    "/repos/{name:shipyard_repo}/files", tags=["content"],
    summary="Every file under some path prefixes, base64 (at most 1000 files, 8 MiB)",
)
def get_files(
    name: _Name,
    claims: Auth,
    svc: Svc,
    rev: _Rev = "HEAD",
    prefix: Annotated[list[str] | None, Query(description="path prefixes; none: every file")] = None,
) -> FilesOut:
    svc.readable(claims, name)
    found = file_set(svc.store.path(name), rev, prefix or [])
    return FilesOut(sha=found.sha, files=found.files)


@router.get(
    "/repos/{name:shipyard_repo}/compare", tags=["content"],
    summary="Paths changed from base to head (a zero base: every path of head)",
)
def get_compare(name: _Name, claims: Auth, svc: Svc, base: _Rev, head: _Rev) -> CompareOut:
    svc.readable(claims, name)
    base_sha, head_sha, paths = changed_paths(svc.store.path(name), base, head)
    return CompareOut(base=base_sha, head=head_sha, files=paths)


# -- the feed ---------------------------------------------------------------------


@router.get("/events", tags=["events"], summary="The ref-update feed (long-polls up to wait seconds)")
async def get_events(
    request: Request,
    claims: Auth,
    svc: Svc,
    after: Annotated[int, Query(ge=0, le=_MAX_EVENT_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    wait: Annotated[float, Query(ge=0)] = 0.0,
) -> EventsOut:
    claims.require("admin", "feeds:read")

    def check() -> list[dict[str, object]]:
        with svc.db.read() as conn:
            return read_events(conn, events, after, limit)

    found = await long_poll(
        check, svc.notifier, [EVENTS_TOPIC], min(wait, _MAX_WAIT),
        disconnected=request.is_disconnected,
    )
    rows = [EventOut.model_validate(e) for e in found or []]
    return EventsOut(events=rows, last_id=rows[-1].id if rows else after)
