"""`/imports`: upload a Salesforce export, HubSpot exports or any CSV/XLSX with a mapping, watch the import's
progress (htmx polls the job), read its counts per entity, download its rejected rows; the history of runs.
Admins only (`import_data`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from closewise.domain.scope import Action
from closewise.errors import CloseWiseError, InvalidInput
from closewise.ingest.fields import ENTITIES, REQUIRED
from closewise.services import import_jobs
from closewise.services.auth import Principal
from closewise.services.jobs import JobRunner
from closewise.web.api.imports import (
    check_size,
    errors_folder,
    errors_response,
    own_job,
    read_upload,
    result_of,
    run_of,
    scoring_state,
)
from closewise.web.deps import EngineDep, JobsDep, PageUser, csrf_checked, require
from closewise.web.render import page

router = APIRouter(include_in_schema=False)
RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]
JobId = Annotated[str, Path(max_length=64)]

COUNT_COLUMNS = ("read", "inserted", "updated", "unchanged", "rejected")
MAPPING_EXAMPLE = """\
entity: opportunities          # opportunities | opportunity_changes | users | accounts | activities | leads | quotas
source: mycrm                  # (source, external_id) is the upsert key
columns:                       # canonical field: source column
  external_id: opportunity_id
  owner: sales_agent           # users matched by external id, then email, then name; created if missing
  account: account
  stage: deal_stage
  amount: amount
  created_at: engage_date
  close_date: close_date
constants:                     # canonical field: fixed value
  currency: USD
formats:
  date: "%d-%m-%y"             # optional; otherwise inferred
stages:                        # optional: source value -> stage key, or a closed status
  Prospecting: prospecting
  Engaging: engaging
  Won: {status: won}
  Lost: {status: lost}
"""


def _fields() -> list[dict[str, Any]]:
    """Each entity a mapping can load, with its fields (required ones first)."""
    return [{"entity": name, "required": list(REQUIRED.get(name, ())),
             "optional": [f for f in fields if f not in REQUIRED.get(name, ())]}
            for name, fields in ENTITIES.items()]


def _history(engine: Any) -> list[Any]:
    return [run_of(run) for run in import_jobs.list_runs(engine, limit=30)]


def _job_context(jobs: JobRunner, user: Principal, job_id: str) -> dict[str, Any]:
    job = own_job(jobs, user, job_id)
    result = result_of(jobs, job)
    scoring = scoring_state(jobs, result.scoring_job_id) if result else None
    # Keep polling while the import runs, and then while the win probabilities it queued are refreshed.
    polling = not job.done or scoring in ("queued", "running")
    return {"job": job, "result": result, "scoring": scoring, "polling": polling, "count_columns": COUNT_COLUMNS,
            "percent_done": round((job.fraction or 0) * 100)}


def _page(request: Request, user: Principal, engine: Any, jobs: JobRunner, *, job_id: str | None = None,
          error: str | None = None, status_code: int = 200) -> HTMLResponse:
    context: dict[str, Any] = {}
    if job_id:
        try:
            context = _job_context(jobs, user, job_id)
        except CloseWiseError:
            context = {}
    return page(request, "imports.html", user, title="Imports", status_code=status_code, runs=_history(engine),
                kinds=list(import_jobs.ImportKind), mapping_example=MAPPING_EXAMPLE, entities=_fields(),
                max_mb=import_jobs.MAX_UPLOAD_BYTES // (1024 * 1024), error=error, **context)


@router.get("/imports", response_class=HTMLResponse)
def imports_page(request: Request, user: PageUser, engine: EngineDep, jobs: JobsDep,
                 job: str | None = None) -> HTMLResponse:
    require(user, Action.IMPORT_DATA)
    return _page(request, user, engine, jobs, job_id=job)


@router.post("/imports", response_model=None)
async def upload(request: Request, user: PageUser, engine: EngineDep, jobs: JobsDep) -> Response:
    """Start an import; htmx gets the progress panel, a plain form post is sent back to the page showing it.

    The CSRF check runs inside the form's context (not as the usual `PageWriter` dependency) so the spooled
    upload is closed even when the check refuses the request."""
    require(user, Action.IMPORT_DATA)
    htmx = bool(request.headers.get("HX-Request"))
    try:
        check_size(request)
        async with request.form(max_files=500, max_fields=20):
            await csrf_checked(request, user)
            staged = await read_upload(request)
    except InvalidInput as exc:
        if htmx:
            return page(request, "partials/imports_error.html", user, title="Imports", status_code=422,
                        message=str(exc))
        return _page(request, user, engine, jobs, error=str(exc), status_code=422)
    job = import_jobs.start_import(jobs, engine, staged, actor_id=user.user_id, errors_dir=errors_folder(request))
    if not htmx:
        return RedirectResponse(f"/imports?job={job.id}", status_code=303)
    return page(request, "partials/imports_job.html", user, title="Imports", **_job_context(jobs, user, job.id))


@router.get("/imports/jobs/{job_id}", response_class=HTMLResponse)
def job_panel(request: Request, job_id: JobId, user: PageUser, engine: EngineDep, jobs: JobsDep) -> HTMLResponse:
    """The progress panel htmx polls; once the import is done it also refreshes the history table."""
    require(user, Action.IMPORT_DATA)
    context = _job_context(jobs, user, job_id)
    runs = _history(engine) if context["job"].done else None
    return page(request, "partials/imports_job.html", user, title="Imports", runs=runs, refresh_history=True,
                **context)


@router.get("/imports/{run_id}/errors", response_model=None)
def run_errors(run_id: RunId, user: PageUser, engine: EngineDep) -> StreamingResponse:
    require(user, Action.IMPORT_DATA)
    return errors_response(engine, run_id)
