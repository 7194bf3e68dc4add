"""The imports page: only an admin opens it; an upload through htmx (or a plain form post) starts a job whose
panel polls until the counts show, the history lists the run, and the rejected rows download by run id."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.tables import import_runs, opportunities
from tests.web.conftest import WebOrg, page_client
from tests.web.test_imports_api import MAPPING, deals_csv

ROLES = ["admin", "leader", "manager", "rep", "viewer"]
_CLIENTS: dict[tuple[str, str], TestClient] = {}


@pytest.fixture(scope="module", autouse=True)
def errors_folder(web_org: WebOrg, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("import-errors")
    web_org.app.state.import_errors_dir = folder
    yield folder
    jobs = web_org.app.state.jobs
    for job in list(jobs._jobs.values()):
        jobs.wait(job, timeout=300)


def browser(org: WebOrg, role: str) -> TestClient:
    key = (org.url, role)
    if key not in _CLIENTS:
        _CLIENTS[key] = page_client(org, role)
    return _CLIENTS[key]


def wait_for(org: WebOrg, job_id: str) -> None:
    org.app.state.jobs.wait(org.app.state.jobs.get(job_id), timeout=300)


@pytest.mark.parametrize("role", ROLES)
def test_only_an_admin_opens_the_imports_page(web_org: WebOrg, role: str) -> None:
    client = browser(web_org, role)
    response = client.get("/imports")
    if role != "admin":
        assert response.status_code == 403
        assert client.get("/imports/1/errors").status_code == 403
        assert client.post("/imports", data={"kind": "csv"}, headers={"HX-Request": "true",
                                                                       "X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]
                           ).status_code == 403
        return
    assert response.status_code == 200
    text = response.text
    assert 'enctype="multipart/form-data"' in text and 'name="mapping"' in text
    assert "external_id: opportunity_id" in text  # the mapping format, as help
    assert all(f'value="{kind}"' in text for kind in ("salesforce", "hubspot", "csv"))


def test_an_upload_through_htmx_polls_until_the_counts_show(web_org: WebOrg) -> None:
    client = browser(web_org, "admin")
    headers = {"HX-Request": "true", "X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]
    started = client.post("/imports", headers=headers, data={"kind": "csv", "mapping": MAPPING},
                          files={"file": ("page-deals.csv", deals_csv(web_org.logins["rep"], prefix="PAGE"),
                                          "text/csv")})
    assert started.status_code == 200
    found = re.search(r'hx-get="/imports/jobs/([0-9a-f]+)"', started.text)
    assert found is not None and 'hx-trigger="every 1s"' in started.text
    job_id = found.group(1)
    wait_for(web_org, job_id)
    job = web_org.app.state.jobs.get(job_id)
    if job.result.scoring_job_id:
        web_org.app.state.jobs.wait(web_org.app.state.jobs.get(job.result.scoring_job_id), timeout=300)
    panel = client.get(f"/imports/jobs/{job_id}", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    assert "every 1s" not in panel.text  # done: the polling stops
    assert "finished" in panel.text and "page-deals.csv" in panel.text
    run_id = job.result.run_id
    assert f'href="/imports/{run_id}/errors"' in panel.text
    assert 'hx-swap-oob="true"' in panel.text and f"#{run_id}" in panel.text  # the history refreshes too
    with web_org.engine.connect() as connection:
        loaded = connection.execute(sa.select(sa.func.count()).select_from(opportunities)
                                    .where(opportunities.c.external_id.like("PAGE-%"))).scalar_one()
        run = connection.execute(sa.select(import_runs.c.status, import_runs.c.user_id)
                                 .where(import_runs.c.id == run_id)).one()
    assert loaded == 2 and run == ("done", web_org.user_id(web_org.logins["admin"]))
    errors = client.get(f"/imports/{run_id}/errors")
    assert errors.status_code == 200 and errors.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(errors.text)))
    assert [(r["line"], r["column"]) for r in rows] == [("4", "amount")]
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    # Someone else's job, or none, is not found.
    assert client.get("/imports/jobs/0123abcd", headers={"HX-Request": "true"}).status_code == 404


def test_a_plain_form_post_comes_back_to_the_page_showing_the_job(web_org: WebOrg) -> None:
    client = browser(web_org, "admin")
    started = client.post("/imports", data={"kind": "csv", "mapping": MAPPING,
                                            "csrf_token": client.csrf},  # type: ignore[attr-defined]
                          files={"file": ("plain.csv", deals_csv(web_org.logins["rep"], prefix="PLAIN"), "text/csv")},
                          follow_redirects=False)
    assert started.status_code == 303
    location = started.headers["location"]
    job_id = location.split("job=")[1]
    wait_for(web_org, job_id)
    shown = client.get(location)
    assert shown.status_code == 200 and "plain.csv" in shown.text and "finished" in shown.text


def test_a_bad_mapping_on_the_page_says_what_is_wrong_and_imports_nothing(web_org: WebOrg) -> None:
    client = browser(web_org, "admin")
    headers = {"HX-Request": "true", "X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]
    with web_org.engine.connect() as connection:
        before = connection.execute(sa.select(sa.func.count()).select_from(import_runs)).scalar_one()
    response = client.post("/imports", headers=headers, data={"kind": "csv", "mapping": "columns: [1, 2"},
                           files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    assert response.status_code == 422
    assert "the pasted mapping" in response.text and "Nothing was imported" in response.text
    no_mapping = client.post("/imports", headers=headers, data={"kind": "csv"},
                             files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    assert no_mapping.status_code == 422 and "needs a mapping" in no_mapping.text
    plain = client.post("/imports", data={"kind": "nope", "csrf_token": client.csrf},  # type: ignore[attr-defined]
                        files={"file": ("x.csv", b"a\n", "text/csv")})
    assert plain.status_code == 422 and "<h1>Imports</h1>" in plain.text and "unknown import kind" in plain.text
    with web_org.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(import_runs)).scalar_one() == before


def test_an_upload_without_the_csrf_token_is_refused(web_org: WebOrg) -> None:
    client = browser(web_org, "admin")
    response = client.post("/imports", data={"kind": "csv", "mapping": MAPPING},
                           files={"file": ("x.csv", b"a,b\n1,2\n", "text/csv")})
    assert response.status_code == 403
