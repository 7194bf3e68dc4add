"""REST API latency and throughput on the 100,000-opportunity demo org, driven by a load generator on loopback.

    python benchmarks/bench_api.py [--db PATH] [--opportunities 100000] [--duration 20] [--connections 16]
                                   [--workers 1 2] [--slow-routes] [--profile]

Builds the demo org (`closewise demo --opportunities N --no-serve`, then `closewise score`) into a temporary
SQLite file, or reuses `--db` (scored first if it holds no scores). The demo has no viewer, so one is added under
the demo manager. For each worker count it starts `closewise serve --workers N` and drives it with `wrk`
(Debian's package, `apt-get install wrk`; the Lua script below sets each role's bearer token and draws requests
from a file) or, when `wrk` is missing, with a stdlib asyncio HTTP/1.1 client in a separate process.

The mix, per role (admin, leader, manager, rep, viewer; a token per role issued directly, so no password
hashing is measured; ids and owners drawn from what the role sees):

    10%  GET /api/me
    35%  GET /api/opportunities?limit=50, with filters (status, owner, stage), a sort and a page offset
    20%  GET /api/opportunities/{id}
    10%  GET /api/opportunities/{id}/changes
     5%  GET /api/opportunities/{id}/activities
     5%  GET /api/playbook/stages
     7.5% GET /api/forecast?period=<this quarter>
     7.5% GET /api/pipeline?period=<this quarter>

The forecast and the pipeline are computed in the background on first request and then kept per data stamp
(`services.org_cache`), in each worker: before measuring, every role asks for both until the answer is ready in
every worker. Each role runs alone for `--duration` seconds, then all roles together. Printed per run:
requests/s, p50/p95/p99 latency, non-2xx answers (which must be 0) and the server's CPU time per request (steadier
than latency on a shared machine). Target (issue 6): p95 under 150 ms and at least 200 requests/s.

Not in the mix: the routes that analyse the whole org on every request — `GET /api/hygiene` and `GET /api/team`
(seconds each on this org) — and the deal list's text search `q` (every deal's and account's name is read).
`--slow-routes` times them one request at a time for each role, so their figures are printed, not hidden.

`--profile` runs one more all-roles load on a one-worker server started under `py-spy record` (`pip install
py-spy`), and prints where the time goes (inclusive share of samples per function, for Closewise, SQLAlchemy,
the database driver, FastAPI/Starlette, pydantic and JSON encoding).

Figures and findings: docs/web.md ("Performance"); the latest run is in the README's benchmark table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from closewise.db.engine import make_engine
from closewise.db.tables import opportunities, users
from closewise.domain.periods import PeriodKind
from closewise.services.auth import issue_token
from closewise.services.org import fiscal_calendar
from closewise.services.users import add_user
from closewise.settings import database_url_from

ROLES = ("admin", "leader", "manager", "rep", "viewer")
HERE = Path(__file__).resolve().parent

# wrk: each connection draws a random request line from the role's file; `done` prints one JSON line.
LUA = r"""
local paths = {}
local token = os.getenv("BENCH_TOKEN")
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Authorization"] = "Bearer " .. token})
end
done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format('{"requests": %d, "seconds": %.3f, "p50": %.3f, "p95": %.3f, "p99": %.3f, ' ..
    '"max": %.3f, "non_2xx": %d, "errors": %d}\n', summary.requests, s, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


# --- the org and the requests ---------------------------------------------------------------------------------

def _closewise() -> list[str]:
    """The `closewise` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("closewise")
    return [str(script)] if script.exists() else ["closewise"]


def build_org(path: Path, opportunities_count: int) -> None:
    cli = [*_closewise(), "--db", str(path)]
    started = time.perf_counter()
    subprocess.run([*cli, "demo", "--opportunities", str(opportunities_count), "--no-serve"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"built the demo org ({opportunities_count:,} opportunities) in {time.perf_counter() - started:.0f} s",
          flush=True)
    score(path)


def score(path: Path) -> None:
    started = time.perf_counter()
    subprocess.run([*_closewise(), "--db", str(path), "score"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"stored the deal scores in {time.perf_counter() - started:.0f} s", flush=True)


def _subtree(user_id: int, managers: dict[int, int | None]) -> set[int]:
    seen, todo = {user_id}, [user_id]
    while todo:
        boss = todo.pop()
        for user, manager in managers.items():
            if manager == boss and user not in seen:
                seen.add(user)
                todo.append(user)
    return seen


BENCH_VIEWER = "vera.viewer@bench.closewise.io"


def add_viewer(url: str) -> None:
    """A viewer under the demo manager (the demo org has none), so every role is measured."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            has_viewer = connection.execute(
                sa.select(sa.func.count()).select_from(users).where(users.c.role == "viewer")).scalar_one()
            manager = connection.execute(
                sa.select(users.c.email).where(users.c.role == "manager", users.c.email.like("%@demo.closewise.io"))
                .order_by(users.c.id)).scalars().first()
        if not has_viewer and manager:
            add_user(engine, email=BENCH_VIEWER, role="viewer", manager_email=manager)
    finally:
        engine.dispose()


def this_quarter(url: str) -> str:
    """The label of the fiscal quarter containing today, in the org's calendar."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            calendar = fiscal_calendar(connection)
    finally:
        engine.dispose()
    return calendar.period_containing(datetime.now(UTC).date(), PeriodKind.QUARTER).label


def request_mix(url: str, *, per_role: int = 2000, seed: int = 7) -> dict[str, tuple[str, list[str]]]:
    """role -> (bearer token, request paths): the realistic mix above, over what the role sees."""
    rng = random.Random(seed)
    quarter = this_quarter(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        people = connection.execute(sa.select(users.c.id, users.c.role, users.c.manager_id, users.c.active,
                                              users.c.email)).all()
        stages = sorted(connection.execute(sa.select(opportunities.c.stage).distinct()).scalars())
        managers = {p.id: p.manager_id for p in people}
        mix: dict[str, tuple[str, list[str]]] = {}
        for role in ROLES:
            candidates = [p for p in people if p.role == role and p.active]
            if not candidates:
                continue
            # The demo's named logins first; otherwise the user with the largest subtree (the heaviest scope).
            person = next((p for p in candidates if p.email and "@demo.closewise.io" in p.email
                           and p.email.split("@")[0].count(".") == 1 and role != "viewer"), None)
            if person is None:
                person = max(candidates, key=lambda p: len(_subtree(p.id, managers)))
            scope = None if role in ("admin", "leader") else _subtree(person.id, managers)
            deals = sa.select(opportunities.c.id, opportunities.c.owner_id)
            if scope is not None:
                deals = deals.where(opportunities.c.owner_id.in_(sorted(scope)))
            # A viewer under the manager sees only records they own, none in the demo: their mix has no deal ids.
            rows = connection.execute(deals.order_by(sa.func.random()).limit(5000)).all()
            ids = [row.id for row in rows]
            owners = sorted({row.owner_id for row in rows if row.owner_id is not None})
            token = issue_token(engine, user_id=person.id, minutes=24 * 60).secret
            mix[role] = (token, [_draw(rng, ids, owners, stages, quarter) for _ in range(per_role)])
    engine.dispose()
    return mix


def _draw(rng: random.Random, ids: list[int], owners: list[int], stages: list[str], quarter: str) -> str:
    kind = rng.random()
    if kind < 0.10:
        return "/api/me"
    if kind < 0.45 or (not ids and kind < 0.85):
        query = ["limit=50"]
        if rng.random() < 0.6:
            query.append(f"status={rng.choice(['open', 'open', 'won', 'lost'])}")
        if owners and rng.random() < 0.3:
            query.append(f"owner_id={rng.choice(owners)}")
        if rng.random() < 0.3:
            query.append(f"stage={rng.choice(stages)}")
        if rng.random() < 0.4:
            query.append(f"sort={rng.choice(['-amount', 'close_date', '-win_probability', 'name'])}")
        if rng.random() < 0.3:
            query.append(f"offset={rng.choice([50, 100, 500])}")
        return "/api/opportunities?" + "&".join(query)
    if kind < 0.65:
        return f"/api/opportunities/{rng.choice(ids)}"
    if kind < 0.75:
        return f"/api/opportunities/{rng.choice(ids)}/changes"
    if kind < 0.80:
        return f"/api/opportunities/{rng.choice(ids)}/activities"
    if kind < 0.85:
        return "/api/playbook/stages"
    if kind < 0.925:
        return f"/api/forecast?period={quarter}"
    return f"/api/pipeline?period={quarter}"


def _get(base: str, path: str, token: str, *, timeout: float = 120) -> tuple[int, float]:
    """(status, milliseconds) of one GET."""
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # loopback only
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    return status, (time.perf_counter() - started) * 1000


def warm_up(base: str, mix: dict[str, tuple[str, list[str]]], *, workers: int, limit: float = 1200) -> float:
    """Ask each role's forecast and pipeline until every worker has them ready (answers 200 several times in a
    row: each worker computes its own); returns the seconds it took."""
    started = time.monotonic()
    for token, paths in mix.values():
        for prefix in ("/api/forecast?", "/api/pipeline?"):
            path = next((p for p in paths if p.startswith(prefix)), None)
            in_a_row = 0
            while path is not None and in_a_row < 4 * workers:
                if time.monotonic() - started > limit:
                    raise RuntimeError(f"{path} was not ready within {limit:.0f} s")
                status, _ = _get(base, path, token)
                if status == 200:
                    in_a_row += 1
                elif status == 202:
                    in_a_row = 0
                    time.sleep(1)
                else:
                    raise RuntimeError(f"{path} answered {status}")
    return time.monotonic() - started


SLOW_ROUTES = ("/api/hygiene", "/api/team", "/api/opportunities?limit=50&q=acme")


def time_slow_routes(base: str, mix: dict[str, tuple[str, list[str]]], *, repeat: int = 3) -> None:
    """Each slow route for each role, one request at a time after one unmeasured request: median and worst."""
    print("\n== routes left out of the mix, one request at a time (median / worst of "
          f"{repeat}, after one unmeasured)", flush=True)
    for path in SLOW_ROUTES:
        for role, (token, _) in mix.items():
            _get(base, path, token, timeout=600)
            times, statuses = [], set()
            for _ in range(repeat):
                status, elapsed = _get(base, path, token, timeout=600)
                times.append(elapsed)
                statuses.add(status)
            print(f"{path:<40} {role:<8} {statistics.median(times):9.0f} ms / {max(times):9.0f} ms   "
                  f"status {','.join(str(s) for s in sorted(statuses))}", flush=True)


# --- the server -----------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, workers: int, port: int, *, profile_to: Path | None = None,
                 profile_seconds: int = 0) -> subprocess.Popen[bytes]:
    """The server on `port`; with `profile_to`, the one-worker server runs under `py-spy record` for
    `profile_seconds` (py-spy cannot attach to a running process on this machine, so it starts the server)."""
    env = {**os.environ, "CLOSEWISE_DATABASE_URL": url}
    if profile_to is not None:
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy) if spy.exists() else "py-spy", "record", "--duration", str(profile_seconds), "--rate",
                   "200", "--format", "raw", "--output", str(profile_to), "--", sys.executable, "-c",
                   "from closewise.cli.app import main; main()", "serve", "--port", str(port)]
    else:
        command = [*_closewise(), "serve", "--port", str(port), "--workers", str(workers)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180  # three processes importing the app on a busy machine take a while
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server stopped: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the server did not start within 180 s")


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by `pid` and its descendants (uvicorn's workers), from /proc. Unlike
    latency, it hardly depends on what else the machine runs, so it gives the capacity: cores / CPU per request."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, IndexError, ValueError):
            continue
    return total


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# --- the load -------------------------------------------------------------------------------------------------

def run_wrk(base: str, token: str, paths: list[str], *, duration: int, connections: int,
            folder: Path) -> dict[str, Any]:
    script, listing = folder / "mix.lua", folder / f"paths-{abs(hash(token))}.txt"
    if not script.exists():
        script.write_text(LUA)
    listing.write_text("\n".join(paths) + "\n")
    env = {**os.environ, "BENCH_TOKEN": token, "BENCH_PATHS": str(listing)}
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script),
                           base], env=env, capture_output=True, text=True, check=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary: {done.stdout} {done.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def run_python_client(base: str, token: str, paths: list[str], *, duration: int,
                      connections: int) -> dict[str, Any]:
    """The fallback load generator, in a process of its own so it does not share the server's CPU accounting."""
    payload = json.dumps({"base": base, "token": token, "paths": paths, "duration": duration,
                          "connections": connections})
    done = subprocess.run([sys.executable, __file__, "--load-client"], input=payload, capture_output=True,
                          text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _load_client() -> None:
    """Keep-alive HTTP/1.1 connections, each sending the next random request as soon as the answer is in."""
    spec = json.loads(sys.stdin.read())
    host, port = spec["base"].removeprefix("http://").split(":")
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0

    async def connection(until: float, rng: random.Random) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < until:
                request = (f"GET {rng.choice(spec['paths'])} HTTP/1.1\r\nHost: {host}\r\n"
                           f"Authorization: Bearer {spec['token']}\r\n\r\n")
                started = time.perf_counter()
                writer.write(request.encode())
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = (line.partition(":") for line in lines[1:] if line)
                headers = {name.strip().lower(): value.strip() for name, _, value in fields}
                if headers.get("transfer-encoding") == "chunked":
                    while True:
                        size = int((await reader.readline()).strip(), 16)
                        await reader.readexactly(size + 2)
                        if size == 0:
                            break
                else:
                    await reader.readexactly(int(headers.get("content-length", "0")))
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[int(lines[0].split()[1])] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
        finally:
            writer.close()

    async def main() -> float:
        started = time.perf_counter()
        until = started + spec["duration"]
        await asyncio.gather(*(connection(until, random.Random(i)) for i in range(spec["connections"])))
        return time.perf_counter() - started

    seconds = asyncio.run(main())
    cuts = statistics.quantiles(latencies, n=100)
    print(json.dumps({"requests": len(latencies), "seconds": seconds, "rps": len(latencies) / seconds,
                      "p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(latencies),
                      "non_2xx": sum(n for status, n in statuses.items() if not 200 <= status < 300),
                      "errors": errors}))


def drive(base: str, token: str, paths: list[str], args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    if shutil.which("wrk"):
        return run_wrk(base, token, paths, duration=args.duration, connections=args.connections, folder=folder)
    return run_python_client(base, token, paths, duration=args.duration, connections=args.connections)


def _row(label: str, result: dict[str, Any]) -> str:
    clean = not result["non_2xx"] and not result["errors"]
    ok = "ok" if result["p95"] < 150 and result["rps"] >= 200 and clean else "MISSED"
    cpu = f"   server CPU {result['cpu_ms']:4.1f} ms/req" if "cpu_ms" in result else ""
    return (f"{label:<20} {result['rps']:6.1f} req/s   p50 {result['p50']:6.1f} ms   p95 {result['p95']:6.1f} ms   "
            f"p99 {result['p99']:6.1f} ms   non-2xx {result['non_2xx']:>3}   errors {result['errors']:>2}{cpu}   "
            f"load {os.getloadavg()[0]:4.1f}   {ok}")


def measured(server: subprocess.Popen[bytes], run: Any) -> dict[str, Any]:
    """`run()`'s result with the server's CPU milliseconds per request."""
    before = server_cpu_seconds(server.pid)
    result: dict[str, Any] = run()
    used = server_cpu_seconds(server.pid) - before
    if result["requests"]:
        result["cpu_ms"] = 1000 * used / result["requests"]
    return result


# --- profiling ------------------------------------------------------------------------------------------------

_GROUPS = (
    ("closewise", "closewise/"),
    ("sqlalchemy", "sqlalchemy/"),
    ("sqlite3 / psycopg driver", ("sqlite3/", "psycopg/")),
    ("fastapi + starlette", ("fastapi/", "starlette/")),
    ("pydantic", "pydantic"),
    ("json encoding", ("json/", "jsonable_encoder")),
    ("uvicorn + asyncio", ("uvicorn/", "asyncio/", "uvloop", "httptools")),
)


def summarise_profile(path: Path, *, top: int = 30) -> None:
    """Inclusive share of the request-handling samples per library group and per function, and the functions the
    time is spent in (self time). Samples of the server's start-up (imports, building the app) and of idle
    threads are left out."""
    if not path.exists():
        print("(py-spy wrote no profile)")
        return
    total = 0
    groups: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        if any("<module>" in f or "create_app" in f for f in frames):
            continue  # start-up
        if not any("fastapi/" in f or "starlette/" in f or "uvicorn/protocols" in f for f in frames):
            continue  # idle threads and the event loop waiting
        count = int(count_text)
        total += count
        for name, marks in _GROUPS:
            if any(mark in frame for frame in frames for mark in ((marks,) if isinstance(marks, str) else marks)):
                groups[name] += count
        for frame in set(frames):
            if any(mark in frame for mark in ("closewise/", "sqlalchemy/", "fastapi/", "pydantic", "starlette/")):
                functions[frame] += count
        leaves[frames[-1]] += count
    if not total:
        print("(no request samples)")
        return
    print(f"\nwhere the time goes ({total:,} samples while handling requests; inclusive: a frame counts for "
          "every sample it is on the stack of)")
    for name, count in groups.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("  by function (inclusive):")
    for frame, count in functions.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame[:150]}")
    print("  by function (self):")
    for frame, count in leaves.most_common(15):
        print(f"  {100 * count / total:5.1f}%  {frame[:150]}")


# --- main -----------------------------------------------------------------------------------------------------

def main() -> None:
    if "--load-client" in sys.argv:
        _load_client()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a built demo org (path or URL); default: build one in a temporary file")
    parser.add_argument("--opportunities", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2],
                        help="worker counts to run (none: only the --profile run)")
    parser.add_argument("--roles", nargs="+", default=list(ROLES), choices=ROLES)
    parser.add_argument("--slow-routes", action="store_true",
                        help="also time the routes left out of the mix, one request at a time")
    parser.add_argument("--profile", action="store_true", help="py-spy the 1-worker server during the mixed run")
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's raw samples in this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        if args.db:
            url = database_url_from(args.db)
            subprocess.run([*_closewise(), "--db", url, "init"], check=True, stdout=subprocess.DEVNULL)
            engine = make_engine(url)
            with engine.connect() as connection:
                scored = connection.execute(sa.text("SELECT count(*) FROM deal_scores")).scalar_one()
            engine.dispose()
            if not scored and url.startswith("sqlite:///"):
                score(Path(url.removeprefix("sqlite:///")))
        else:
            path = folder / "bench.db"
            build_org(path, args.opportunities)
            url = f"sqlite:///{path}"
        add_viewer(url)
        mix = {role: value for role, value in request_mix(url).items() if role in args.roles}
        (folder / "mix.lua").write_text(LUA)
        everyone = [(token, path) for token, paths in mix.values() for path in paths]
        print(f"load generator: {'wrk (1 thread)' if shutil.which('wrk') else 'python asyncio (stdlib)'}, "
              f"{args.connections} connections, {args.duration} s per run; roles: {', '.join(mix)}; "
              f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
        for workers in args.workers:
            port = _free_port()
            server = start_server(url, workers, port)
            base = f"http://127.0.0.1:{port}"
            try:
                print(f"\n== {workers} worker{'s' if workers > 1 else ''} (closewise serve --workers {workers})",
                      flush=True)
                ready = warm_up(base, mix, workers=workers)
                print(f"(forecast and pipeline ready in every worker after {ready:.0f} s)", flush=True)
                first_token, first_paths = next(iter(mix.values()))
                drive(base, first_token, first_paths[:200], argparse.Namespace(duration=3, connections=4), folder)
                for role, (token, paths) in mix.items():
                    result = measured(server, lambda t=token, p=paths, b=base: drive(b, t, p, args, folder))
                    print(_row(role, result), flush=True)
                # All roles at once: wrk takes one token per run, so each role gets a share of the connections.
                results = measured(server, lambda b=base: _drive_all(b, mix, args, folder))
                print(_row("all roles together", results), flush=True)
                if args.slow_routes and workers == args.workers[-1]:
                    time_slow_routes(base, mix)
            finally:
                stop_server(server)
        if args.profile:
            profile = args.profile_out or folder / "profile.txt"
            port = _free_port()
            spy = start_server(url, 1, port, profile_to=profile, profile_seconds=args.duration + 15)
            print(f"\n== profile: 1 worker under py-spy, all roles together for {args.duration} s", flush=True)
            warm_up(f"http://127.0.0.1:{port}", mix, workers=1)
            print(_row("all roles (profiled)", _drive_all(f"http://127.0.0.1:{port}", mix, args, folder)), flush=True)
            spy.wait(timeout=120)
            summarise_profile(profile)
        print(f"\nload average after: {os.getloadavg()[0]:.1f}; {len(everyone):,} distinct requests drawn")


def _drive_all(base: str, mix: dict[str, tuple[str, list[str]]], args: argparse.Namespace,
               folder: Path) -> dict[str, Any]:
    """Every role at once, each with its share of the connections, in parallel; latencies merged by weight."""
    import concurrent.futures

    share = max(1, args.connections // len(mix))
    sub = argparse.Namespace(duration=args.duration, connections=share)
    with concurrent.futures.ThreadPoolExecutor(len(mix)) as pool:
        results = list(pool.map(lambda item: drive(base, item[0], item[1], sub, folder), mix.values()))
    requests = sum(r["requests"] for r in results)
    merged = {"requests": requests, "seconds": max(r["seconds"] for r in results),
              "non_2xx": sum(r["non_2xx"] for r in results), "errors": sum(r["errors"] for r in results)}
    merged["rps"] = sum(r["rps"] for r in results)
    for key in ("p50", "p95", "p99"):
        merged[key] = max(r[key] for r in results)  # conservative: the worst role's percentile
    return merged


if __name__ == "__main__":
    main()
