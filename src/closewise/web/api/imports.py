"""`/api/imports`: upload a Salesforce export, HubSpot exports or any CSV/XLSX with a mapping; the import runs in
the background (poll `/api/imports/jobs/{id}`); past runs and the rejected rows of each. Admins only
(`import_data`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from closewise.domain.scope import Action
from closewise.domain.timeutil import as_utc
from closewise.errors import InvalidInput, NotFound
from closewise.services import import_jobs
from closewise.services.auth import Principal
from closewise.services.jobs import Job, JobRunner
from closewise.web.deps import ApiUser, EngineDep, JobsDep, require

router = APIRouter(tags=["imports"])

MAX_ID = 2**63 - 1
RunId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="The import run's id.")]
JobId = Annotated[str, PathParam(min_length=1, max_length=64, description="The id POST /api/imports returned.")]

_MB = 1024 * 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or expired token"},
    403: {"description": "only an admin imports data"},
    422: {"description": "a parameter that cannot be used (`where` names it)"},
}
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind", "file"],
                    "properties": {
                        "kind": {"type": "string", "enum": [k.value for k in import_jobs.ImportKind]},
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"},
                                 "description": "the export zip, the CSV/XLSX file(s)"},
                        "mapping": {"type": "string", "description": "the mapping YAML (kind csv), pasted"},
                        "mapping_file": {"type": "string", "format": "binary",
                                         "description": "the mapping YAML (kind csv), as a file"},
                    },
                }
            }
        },
    }
}


class JobStarted(BaseModel):
    job_id: str
    status_url: str


class ImportResult(BaseModel):
    run_id: int
    kind: str
    files: list[str]
    counts: dict[str, dict[str, Any]] = Field(
        description="per entity: read, inserted, updated, unchanged, rejected")
    notes: list[str]
    rejected: int
    errors_url: str | None
    scoring_job_id: str | None
    scoring: str | None = Field(description="the refresh of win probabilities: queued, running, done or failed")


class JobStatus(BaseModel):
    id: str
    kind: str
    done: bool
    message: str
    fraction: float | None
    error: str | None
    result: ImportResult | None


class ImportRun(BaseModel):
    id: int
    kind: str
    name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    user_id: int | None
    user_name: str | None
    counts: dict[str, dict[str, Any]]
    errors_url: str | None

    @field_validator("started_at", "finished_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # SQLite hands back naive UTC; the API always states the offset (RFC 3339 date-time).
        return None if value is None else as_utc(value)


def errors_folder(request: Request) -> Path:
    """The app's folder for files of rejected rows (`app.state.import_errors_dir` when set)."""
    return import_jobs.errors_dir(getattr(request.app.state, "import_errors_dir", None))


def check_size(request: Request) -> None:
    """Refuse an upload whose declared size is over the limit before reading any of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > import_jobs.MAX_UPLOAD_BYTES + _MB:
        raise InvalidInput(f"the upload is larger than {import_jobs.MAX_UPLOAD_BYTES // _MB} MB; import a file "
                           "this large with the command line (closewise import)", where="file")


async def read_upload(request: Request) -> import_jobs.StagedImport:
    """The multipart upload of the request, checked and saved to a private folder."""
    check_size(request)
    async with request.form(max_files=500, max_fields=20) as form:  # the spooled files close at the end
        kind = form.get("kind")
        mapping = form.get("mapping")
        files = [import_jobs.Upload(item.filename or "", item.file) for item in form.getlist("file")
                 if isinstance(item, UploadFile)]
        mapping_file = form.get("mapping_file")
        mapping_upload = (import_jobs.Upload(mapping_file.filename or "", mapping_file.file)
                          if isinstance(mapping_file, UploadFile) and mapping_file.filename else None)
        if not isinstance(kind, str) or not kind.strip():
            allowed = ", ".join(k.value for k in import_jobs.ImportKind)
            raise InvalidInput(f"say what is imported: kind is one of {allowed}", where="kind")
        return await run_in_threadpool(import_jobs.stage_upload, kind, files,
                                       mapping_text=mapping if isinstance(mapping, str) else None,
                                       mapping_file=mapping_upload)


def own_job(jobs: JobRunner, user: Principal, job_id: str) -> Job:
    """An import job the caller started; anyone else's (or none) is the same 404."""
    job = jobs.get(job_id)
    if job is None or job.owner_id != user.user_id or job.kind != "import":
        raise NotFound(f"no import job {job_id}")
    return job


def scoring_state(jobs: JobRunner, job_id: str | None) -> str | None:
    if job_id is None:
        return None
    job = jobs.get(job_id)
    if job is None:
        return "done"
    if job.error:
        return "failed"
    if job.done:
        return "done"
    return "running" if job.fraction is not None else "queued"


def errors_url(run_id: int, rejected: int) -> str | None:
    return f"/api/imports/{run_id}/errors" if rejected else None


def result_of(jobs: JobRunner, job: Job) -> ImportResult | None:
    outcome = job.result
    if not isinstance(outcome, import_jobs.ImportOutcome):
        return None
    return ImportResult(run_id=outcome.run_id, kind=outcome.kind, files=outcome.files, counts=outcome.counts,
                        notes=outcome.notes, rejected=outcome.rejected,
                        errors_url=errors_url(outcome.run_id, outcome.rejected),
                        scoring_job_id=outcome.scoring_job_id, scoring=scoring_state(jobs, outcome.scoring_job_id))


def status_of(jobs: JobRunner, job: Job) -> JobStatus:
    return JobStatus(id=job.id, kind=job.kind, done=job.done, message=job.message, fraction=job.fraction,
                     error=job.error, result=result_of(jobs, job))


def run_of(run: Any) -> ImportRun:
    counts = import_jobs.public_counts(run.counts)
    rejected = sum(int(value.get("rejected") or 0) for value in counts.values())
    return ImportRun(id=run.id, kind=run.kind, name=import_jobs.run_label(run.path), status=run.status,
                     started_at=run.started_at, finished_at=run.finished_at, user_id=run.user_id,
                     user_name=run.user_name, counts=counts,
                     errors_url=errors_url(run.id, rejected) if run.errors_file else None)


@router.post("/imports", response_model=JobStarted, status_code=202, openapi_extra=_UPLOAD_BODY,
             responses={**_ERRORS, 400: {"description": "the body is not a readable multipart form"},
                        422: {"description": "unknown kind, too large, a bad mapping or file"}})
async def start_import(request: Request, user: ApiUser, engine: EngineDep, jobs: JobsDep) -> JobStarted:
    """Upload and import: `kind` salesforce (a Data Export zip or its CSV files), hubspot (CSV/XLSX exports or
    a zip) or csv (one CSV/XLSX file with a `mapping`, pasted, or a `mapping_file`). Answers at once with a job
    to poll; the mapping and the file's columns are checked before that."""
    require(user, Action.IMPORT_DATA)
    staged = await read_upload(request)
    job = import_jobs.start_import(jobs, engine, staged, actor_id=user.user_id, errors_dir=errors_folder(request))
    return JobStarted(job_id=job.id, status_url=f"/api/imports/jobs/{job.id}")


@router.get("/imports/jobs/{job_id}", response_model=JobStatus,
            responses={**_ERRORS, 404: {"description": "no such job of the caller"}})
def job_status(job_id: JobId, user: ApiUser, jobs: JobsDep) -> JobStatus:
    """An import job's progress, and when done its counts per entity (or its one error message)."""
    require(user, Action.IMPORT_DATA)
    return status_of(jobs, own_job(jobs, user, job_id))


@router.get("/imports", response_model=list[ImportRun], responses=_ERRORS)
def list_runs(user: ApiUser, engine: EngineDep,
              limit: Annotated[int, Query(ge=1, le=500, description="How many runs.")] = 50) -> list[ImportRun]:
    """Past import runs (web, command line), the latest first."""
    require(user, Action.IMPORT_DATA)
    return [run_of(run) for run in import_jobs.list_runs(engine, limit=limit)]


@router.get("/imports/{run_id}", response_model=ImportRun,
            responses={**_ERRORS, 404: {"description": "no such run"}})
def get_run(run_id: RunId, user: ApiUser, engine: EngineDep) -> ImportRun:
    require(user, Action.IMPORT_DATA)
    return run_of(import_jobs.get_run(engine, run_id))


@router.get("/imports/{run_id}/errors", response_class=StreamingResponse,
            responses={**_ERRORS, 404: {"description": "no such run, or it rejected no row"},
                       200: {"content": {"text/csv": {}}, "description": "entity, file, line, column, value, reason"}})
def run_errors(run_id: RunId, user: ApiUser, engine: EngineDep) -> StreamingResponse:
    """The rows a run rejected, with file, line, column and reason (cells a spreadsheet could run as a formula
    are quoted)."""
    require(user, Action.IMPORT_DATA)
    return errors_response(engine, run_id)


def errors_response(engine: Any, run_id: int) -> StreamingResponse:
    lines = import_jobs.errors_csv(engine, run_id)
    return StreamingResponse(lines, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="import-{run_id}-errors.csv"',
        "X-Content-Type-Options": "nosniff",
    })
