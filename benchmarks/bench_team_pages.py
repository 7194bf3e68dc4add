"""Time the Team and Coaching pages on the demo org: the first look (the org read and the report computed), a
second look (served from the app's cache, `services.report_cache`), and a look after a deal edit (the data stamp
moved: the org read again and the report computed again).

    python benchmarks/bench_team_pages.py [--db PATH] [--opportunities N] [--repeat 3]

Builds the seeded demo org (`services.demo.build_demo`, ~2,500 deals by default, today 2026-11-22) and its deal
scores into a temporary SQLite file, or uses `--db` as it is. Pages are requested in process (FastAPI's test
client, no network) as the demo leader (every rep) and manager (one team). Printed per page and role: the best
of `--repeat` runs of each look, in seconds.

Measured on this machine (2 vCPU shared with other jobs, load average ~10, SQLite, the 2,500-deal demo, best of
3 runs):
    page                 role        first   second  after an edit
    /team                leader       0.81     0.03           0.59
    /team                manager      0.18     0.01           0.16
    /coaching/gap        leader       0.60     0.01           0.52
    /coaching/gap        manager      0.51     0.01           0.37
    /coaching/ramp       leader       0.34     0.01           0.40
    /coaching/ramp       manager      0.68     0.00           0.90
    /coaching/reviews    leader       0.48     0.01           0.43
    /coaching/reviews    manager      0.44     0.01           0.52
(the leader's first /team also reads the org, which every later look shares; single runs under heavier load took
1-4 s for a first look.)
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from closewise.db.engine import make_engine
from closewise.db.migrate import upgrade
from closewise.db.tables import opportunities, users
from closewise.domain.enums import Role
from closewise.domain.scope import Scope
from closewise.services.deals import DealEdit, edit_deal
from closewise.services.demo import build_demo
from closewise.services.scoring import refresh_deal_scores
from closewise.settings import Settings
from closewise.web.app import create_app

PAGES = ("/team", "/coaching/gap", "/coaching/ramp", "/coaching/reviews")
PASSWORD = "closewise-demo"


def _signed_in(client: TestClient, email: str) -> TestClient:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token is not None
    answer = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1),
                                         "next": "/deals"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def _seconds(client: TestClient, path: str) -> float:
    start = time.perf_counter()
    answer = client.get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="an SQLite file holding an org (default: build the demo)")
    parser.add_argument("--opportunities", type=int, default=None, help="demo size (default: the demo's)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    path = args.db or Path(folder.name) / "demo.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    if args.db is None:
        upgrade(engine)
        build_demo(engine, seed=7, opportunities=args.opportunities, today=date(2026, 11, 22))
        refresh_deal_scores(engine)
    with engine.connect() as connection:
        logins = dict(connection.execute(sa.select(users.c.role, users.c.email).where(
            users.c.role.in_(["leader", "manager"]), users.c.password_hash.is_not(None))  # the demo's logins
            .order_by(users.c.id.desc())).all())
        deal = connection.execute(sa.select(opportunities.c.id, opportunities.c.amount).where(
            opportunities.c.status == "open").order_by(opportunities.c.id)).first()
    assert deal is not None
    with engine.connect() as connection:
        leader_id = connection.execute(sa.select(users.c.id).where(users.c.email == logins["leader"])).scalar_one()
    everyone = Scope(user_id=leader_id, role=Role.LEADER, owner_ids=None)  # the leader edits the deal
    best: dict[tuple[str, str, str], float] = {}
    for run in range(args.repeat):
        app = create_app(Settings(database_url=url), engine=engine)  # a fresh app: an empty cache
        clients = {role: _signed_in(TestClient(app), email) for role, email in sorted(logins.items())}
        for look in ("first", "second", "after an edit"):
            if look == "after an edit":  # a change row: the data stamp moves
                amount = float(deal.amount or 0) + run + 1
                edit_deal(engine, scope=everyone, deal_id=deal.id, edit=DealEdit(amount=amount))
            for role, client in clients.items():
                for page in PAGES:
                    key = (page, role, look)
                    best[key] = min(best.get(key, float("inf")), _seconds(client, page))
    print(f"{'page':<20} {'role':<8} {'first':>8} {'second':>8} {'after an edit':>14}")
    for page in PAGES:
        for role in sorted(logins):
            figures = [best[(page, role, look)] for look in ("first", "second", "after an edit")]
            print(f"{page:<20} {role:<8} {figures[0]:8.2f} {figures[1]:8.2f} {figures[2]:14.2f}")
    folder.cleanup()


if __name__ == "__main__":
    main()
