"""OpenAI's Files API: upload (checked like `persona data check`), list, read, download, delete."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

from litestar import Response, Router, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery

from data.check import check_dataset
from data.eval.suite import read_suite
from data.problem import clip, listed
from server.errors import AppError, InvalidRequest, NotFound, error_responses
from server.jobs.files import FileStore, MissingFileError
from server.jobs.types import FileDeleted, FileList, FileObject
from server.settings import ServerSettings
from server.state import ServerState

PURPOSES = ("fine-tune", "evals")
"""`fine-tune`: a chat dataset; `evals`: an eval suite for `POST /v1/personas/{id}/evals`."""
MULTIPART_OVERHEAD = 64 * 1024
"""Room for the multipart framing around the file itself."""
COPY_BLOCK = 1 << 20
"""Uploads are copied to disk this many bytes at a time."""


class FileTooLargeError(AppError):
    """An upload over the configured limit."""

    status = 413
    default_code = "file_too_large"


@dataclass
class Upload:
    """The multipart form of `POST /v1/files`."""

    file: UploadFile
    purpose: str


def file_not_found(file_id: str, param: str = "file_id") -> NotFound:
    """OpenAI's 404 for an unknown or deleted file."""
    return NotFound(f"No such File object: {clip(file_id)}", param=param, code="file_not_found")


def read_file(files: FileStore, file_id: str, param: str = "file_id") -> FileObject:
    """A file's object, or a 404 in the envelope."""
    try:
        return files.get(file_id)
    except MissingFileError:
        raise file_not_found(file_id, param) from None


class FilesQuotaError(AppError):
    """The files folder holds as much as the server allows."""

    status = 413
    default_code = "files_quota_exceeded"


def problems_in(path: Path, purpose: str) -> list[str]:
    """The errors of an upload saved at `path`, as `line N: message` (empty when usable)."""
    if purpose == "evals":
        _cases, found = read_suite(path)
    else:
        found = check_dataset([path]).errors
        if not found and path.stat().st_size == 0:
            return ["line 0: the file holds no records"]
    return [f"line {p.line}: {p.message}" for p in found if p.severity == "error"]


def save_upload(source: BinaryIO, target: Path, limit: int, room: int) -> int:
    """Copy an upload to `target` in blocks, refusing it (413) as soon as it passes `limit`
    bytes or the `room` left under the files quota; return its size."""
    size = 0
    with target.open("wb") as out:
        while block := source.read(COPY_BLOCK):
            size += len(block)
            if size > limit:
                raise FileTooLargeError(
                    f"the file is over {limit} bytes, the limit for one upload", param="file"
                )
            if size > room:
                raise FilesQuotaError(
                    f"the stored files would pass max_files_total_bytes ({room} bytes are left); "
                    "delete files (DELETE /v1/files/{file_id}) to make room",
                    param="file",
                )
            out.write(block)
    return size


@post(
    "/v1/files",
    status_code=200,
    summary="Upload a file",
    tags=["files"],
    responses=error_responses(400, 413),
)
async def create_file(
    state: ServerState,
    data: Annotated[Upload, Body(media_type=RequestEncodingType.MULTI_PART)],
) -> FileObject:
    """Store a JSONL file under a new id once the data checks pass; nothing is kept if not."""
    if data.purpose not in PURPOSES:
        raise InvalidRequest(
            f"purpose {data.purpose!r} is not supported here; use one of: " + ", ".join(PURPOSES),
            param="purpose",
            code="invalid_value",
        )
    # Streamed to disk in blocks: an upload is never held whole in memory.
    settings = state.settings
    staged = state.files.staging_path()
    try:
        room = settings.max_files_total_bytes - await asyncio.to_thread(state.files.used_bytes)
        limit = settings.max_file_bytes
        await asyncio.to_thread(save_upload, data.file.file, staged, limit, room)
        problems = await asyncio.to_thread(problems_in, staged, data.purpose)
        if problems:
            raise InvalidRequest(
                f"{clip(data.file.filename or 'the file')} has {len(problems)} error(s):\n"
                + "\n".join(listed(problems)),
                param="file",
                code="invalid_file",
            )
        return await asyncio.to_thread(
            state.files.adopt, staged, data.file.filename or "upload.jsonl", data.purpose
        )
    finally:
        staged.unlink(missing_ok=True)
        await data.file.close()


@get("/v1/files", summary="List files", tags=["files"])
async def list_files(
    state: ServerState,
    purpose: FromQuery[str | None] = None,
    after: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
    order: FromQuery[Literal["asc", "desc"]] = "desc",
) -> FileList:
    """Files by creation time (`order`, newest first by default), `limit` after `after`."""
    found = state.files.list(purpose)
    if order == "asc":
        found.reverse()
    ids = [f.id for f in found]
    start = ids.index(after) + 1 if after in ids else 0
    chunk = found[start : start + max(1, limit)]
    return FileList(
        data=chunk,
        has_more=start + len(chunk) < len(found),
        first_id=chunk[0].id if chunk else None,
        last_id=chunk[-1].id if chunk else None,
    )


@get(
    "/v1/files/{file_id:str}",
    summary="Retrieve a file",
    tags=["files"],
    responses=error_responses(404),
)
async def retrieve_file(state: ServerState, file_id: FromPath[str]) -> FileObject:
    """One file's object."""
    return read_file(state.files, file_id)


@get(
    "/v1/files/{file_id:str}/content",
    summary="A file's content",
    tags=["files"],
    responses=error_responses(404),
    media_type="application/octet-stream",
)
async def file_content(state: ServerState, file_id: FromPath[str]) -> Response[bytes]:
    """The file's bytes as uploaded (or as the server wrote them, for results)."""
    try:
        content = state.files.content(file_id)
    except MissingFileError:
        raise file_not_found(file_id) from None
    return Response(content, media_type="application/octet-stream")


@delete(
    "/v1/files/{file_id:str}",
    status_code=200,
    summary="Delete a file",
    tags=["files"],
    responses=error_responses(404),
)
async def delete_file(state: ServerState, file_id: FromPath[str]) -> FileDeleted:
    """Remove a file; later reads of it get a 404."""
    try:
        state.files.delete(file_id)
    except MissingFileError:
        raise file_not_found(file_id) from None
    return FileDeleted(id=file_id)


def file_routes(settings: ServerSettings) -> list[Router]:
    """The Files API handlers, under a body limit of one upload (`max_file_bytes`) and its
    multipart framing rather than the JSON bodies' limit."""
    handlers = [create_file, list_files, retrieve_file, file_content, delete_file]
    limit = settings.max_file_bytes + MULTIPART_OVERHEAD
    return [Router("/", route_handlers=handlers, request_max_body_size=limit)]
