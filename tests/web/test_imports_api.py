"""`/api/imports`: an upload imported in the background, its run and counts, the rejected rows served by run id
with formula-like cells inert, the refusals (kind, size, mapping) and who may do what."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import audit_log, deal_scores, import_runs, opportunities, users
from closewise.services import import_jobs
from tests.web.conftest import WebOrg, api_client

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
MAPPING = """\
entity: opportunities
source: webtest
columns:
  external_id: id
  name: name
  owner: owner
  stage: stage
  amount: amount
  created_at: created
  close_date: close
constants:
  currency: USD
"""


def deals_csv(owner: str, *, prefix: str, bad_amount: str = "=1+2") -> bytes:
    """Two good deals and, on line 4 of the file (the header is line 1), one whose amount is not a number."""
    rows = [
        "id,name,owner,stage,amount,created,close",
        f"{prefix}-1,{prefix} first,{owner},Prospecting,12000,2026-06-01,2027-01-15",
        f"{prefix}-2,{prefix} second,{owner},Prospecting,8000,2026-07-01,2027-02-15",
        f'{prefix}-3,"=HYPERLINK(""http://x"")",{owner},Prospecting,{bad_amount},2026-07-01,2027-02-15',
    ]
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module", autouse=True)
def errors_folder(web_org: WebOrg, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("import-errors")
    web_org.app.state.import_errors_dir = folder
    yield folder
    jobs = web_org.app.state.jobs
    for job in list(jobs._jobs.values()):  # let queued score refreshes end before the database goes
        jobs.wait(job, timeout=300)


def finish(org: WebOrg, client: TestClient, job_id: str) -> dict[str, Any]:
    org.app.state.jobs.wait(org.app.state.jobs.get(job_id), timeout=300)
    status = client.get(f"/api/imports/jobs/{job_id}")
    assert status.status_code == 200, status.text
    body: dict[str, Any] = status.json()
    assert body["done"]
    return body


def upload(client: TestClient, content: bytes, *, mapping: str = MAPPING, name: str = "deals.csv",
           kind: str = "csv") -> Any:
    return client.post("/api/imports", data={"kind": kind, "mapping": mapping},
                       files={"file": (name, content, "text/csv")})


def test_a_csv_with_a_mapping_is_imported_in_the_background_and_recorded(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    owner = web_org.logins["rep"]
    started = upload(client, deals_csv(owner, prefix="API"))
    assert started.status_code == 202, started.text
    body = finish(web_org, client, started.json()["job_id"])
    assert body["error"] is None
    result = body["result"]
    counts = result["counts"]["opportunities"]
    assert counts == {"read": 3, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    assert "errors_file" not in counts  # the server's paths stay on the server
    with web_org.engine.connect() as connection:
        stored = connection.execute(
            sa.select(opportunities.c.external_id, opportunities.c.amount, users.c.email)
            .join(users, users.c.id == opportunities.c.owner_id)
            .where(opportunities.c.source == "webtest").order_by(opportunities.c.external_id)).all()
        run = connection.execute(sa.select(import_runs).where(import_runs.c.id == result["run_id"])).mappings().one()
        audited = connection.execute(sa.select(audit_log.c.actor_id).where(
            audit_log.c.action == "import.run", audit_log.c.entity_id == str(result["run_id"]))).scalars().all()
    assert [(r.external_id, r.amount, r.email) for r in stored] == [("API-1", 12000, owner), ("API-2", 8000, owner)]
    admin_id = web_org.user_id(web_org.logins["admin"])
    assert run["status"] == "done" and run["user_id"] == admin_id and run["kind"] == "csv:opportunities"
    assert audited == [admin_id]
    # The run is listed, with who ran it and where its errors are.
    runs = client.get("/api/imports").json()
    listed = next(r for r in runs if r["id"] == result["run_id"])
    assert listed["name"] == "deals.csv" and listed["user_name"] and listed["errors_url"] == result["errors_url"]
    assert client.get(f"/api/imports/{result['run_id']}").json()["counts"] == result["counts"]
    # The import changed deals, so a refresh of the stored win probabilities was queued; once done, the new open
    # deals have a score.
    scoring = web_org.app.state.jobs.get(result["scoring_job_id"])
    assert scoring is not None and scoring.kind == "scoring"
    web_org.app.state.jobs.wait(scoring, timeout=300)
    assert scoring.error is None, scoring.error
    with web_org.engine.connect() as connection:
        scored = connection.execute(
            sa.select(sa.func.count()).select_from(deal_scores.join(
                opportunities, opportunities.c.id == deal_scores.c.opportunity_id))
            .where(opportunities.c.source == "webtest")).scalar_one()
    assert scored == 2


def test_the_rejected_rows_download_names_line_and_reason_and_keeps_formulas_inert(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    body = finish(web_org, client, upload(client, deals_csv(web_org.logins["rep"], prefix="ERR")).json()["job_id"])
    result = body["result"]
    assert result["rejected"] == 1
    response = client.get(result["errors_url"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1
    row = rows[0]
    assert row["entity"] == "opportunities" and row["file"] == "deals.csv"
    assert row["line"] == "4" and row["column"] == "amount"
    assert "not a number" in row["reason"]
    # Every cell a spreadsheet would run as a formula starts with a quote.
    for cell in (value for r in rows for value in r.values()):
        assert cell[:1] not in ("=", "+", "-", "@"), cell
    assert row["value"] == "'=1+2"


def test_nothing_rejected_means_no_errors_file(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    good = b"id,name,owner,stage,amount,created,close\nOK-1,Fine,%s,Prospecting,100,2026-06-01,2027-01-15\n" % (
        web_org.logins["rep"].encode())
    result = finish(web_org, client, upload(client, good).json()["job_id"])["result"]
    assert result["rejected"] == 0 and result["errors_url"] is None
    assert client.get(f"/api/imports/{result['run_id']}/errors").status_code == 404
    assert client.get("/api/imports/999999/errors").status_code == 404


def test_a_malformed_mapping_is_refused_at_once_naming_it_and_nothing_is_stored(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    with web_org.engine.connect() as connection:
        before = connection.execute(sa.select(sa.func.count()).select_from(import_runs)).scalar_one()
    pasted = upload(client, deals_csv(web_org.logins["rep"], prefix="BAD"), mapping="entity: [opportunities\n")
    assert pasted.status_code == 422
    assert pasted.json()["where"] == "the pasted mapping" and "YAML" in pasted.json()["detail"]
    as_file = client.post("/api/imports", data={"kind": "csv"},
                          files=[("file", ("deals.csv", deals_csv("x@y.io", prefix="BAD"), "text/csv")),
                                 ("mapping_file", ("my-mapping.yml", b"entity: nonsense\nsource: s\n", "text/yaml"))])
    assert as_file.status_code == 422
    assert as_file.json()["where"] == "my-mapping.yml" and "nonsense" in as_file.json()["detail"]
    missing_column = upload(client, deals_csv("x@y.io", prefix="BAD"),
                            mapping=MAPPING.replace("close_date: close", "close_date: closing"))
    assert missing_column.status_code == 422
    assert "closing" in missing_column.json()["detail"] and "deals.csv" in missing_column.json()["detail"]
    with web_org.engine.connect() as connection:
        after = connection.execute(sa.select(sa.func.count()).select_from(import_runs)).scalar_one()
        bad = connection.execute(sa.select(sa.func.count()).select_from(opportunities)
                                 .where(opportunities.c.external_id.like("BAD-%"))).scalar_one()
    assert after == before and bad == 0


def test_unknown_kinds_wrong_files_and_oversized_uploads_get_one_clear_422(web_org: WebOrg,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    client = api_client(web_org, "admin")
    unknown = upload(client, b"a,b\n1,2\n", kind="dynamics")
    assert unknown.status_code == 422 and unknown.json()["where"] == "kind"
    assert "salesforce, hubspot, csv" in unknown.json()["detail"]
    assert client.post("/api/imports", data={"mapping": MAPPING}).status_code == 422
    no_file = client.post("/api/imports", data={"kind": "csv", "mapping": MAPPING})
    assert no_file.status_code == 422 and no_file.json()["where"] == "file"
    wrong_type = upload(client, b"MZ\x90\x00", name="setup.exe", kind="hubspot")
    assert wrong_type.status_code == 422 and wrong_type.json()["where"] == "setup.exe"
    monkeypatch.setattr(import_jobs, "MAX_UPLOAD_BYTES", 1000)
    big = upload(client, b"id,name\n" + b"x,y\n" * 1000)
    assert big.status_code == 422 and "larger than" in big.json()["detail"]


def test_a_file_that_is_not_a_table_fails_the_job_with_its_name(web_org: WebOrg) -> None:
    client = api_client(web_org, "admin")
    started = client.post("/api/imports", data={"kind": "salesforce"},
                          files={"file": ("export.zip", b"this is not a zip", "application/zip")})
    assert started.status_code == 202
    body = finish(web_org, client, started.json()["job_id"])
    assert body["result"] is None and body["error"]
    assert "/tmp" not in body["error"] and "closewise-upload" not in body["error"]


@pytest.mark.parametrize("role", ROLES)
def test_only_an_admin_imports(web_org: WebOrg, role: str) -> None:
    client = api_client(web_org, role)
    expected = 202 if role == "admin" else 403
    response = upload(client, deals_csv(web_org.logins["rep"], prefix=f"ROLE-{role}"))
    assert response.status_code == expected, response.text
    if role == "admin":
        finish(web_org, client, response.json()["job_id"])
        assert client.get("/api/imports").status_code == 200
        return
    with web_org.engine.connect() as connection:
        run_id = connection.execute(sa.select(sa.func.max(import_runs.c.id))).scalar_one() or 1
    for path in ("/api/imports", f"/api/imports/{run_id}", f"/api/imports/{run_id}/errors", "/api/imports/jobs/x"):
        assert client.get(path).status_code == 403, path


def test_without_a_token_every_import_route_answers_401(web_org: WebOrg) -> None:
    client = api_client(web_org, None)
    assert upload(client, b"a\n1\n").status_code == 401
    for path in ("/api/imports", "/api/imports/1", "/api/imports/1/errors", "/api/imports/jobs/abc"):
        assert client.get(path).status_code == 401, path


def test_a_job_is_seen_only_by_who_started_it(web_org: WebOrg) -> None:
    admin = api_client(web_org, "admin")
    job_id = upload(admin, deals_csv(web_org.logins["rep"], prefix="OWN")).json()["job_id"]
    finish(web_org, admin, job_id)
    from closewise.services.users import add_user
    from tests.web.conftest import PASSWORD

    add_user(web_org.engine, email="second.admin@demo.closewise.io", role="admin", password=PASSWORD)
    other = TestClient(web_org.app)
    token = other.post("/api/auth/token", data={"username": "second.admin@demo.closewise.io",
                                                "password": PASSWORD}).json()["access_token"]
    other.headers["Authorization"] = f"Bearer {token}"
    assert other.get(f"/api/imports/jobs/{job_id}").status_code == 404
    assert other.get("/api/imports/jobs/not-a-job").status_code == 404
