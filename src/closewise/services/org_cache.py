"""The org as read from the database, kept while its data stays the same: one read per data stamp, the scoped
views of it that were asked for, and documents computed from them (`OrgCache`).

`data_stamp` is what changes when the data the analyses read changes: the last change row, deal and activity,
and the number of deals (deletions). Everything kept is keyed by it, so a new import or a deal edit makes the
next request read afresh. Used by the forecast, pipeline and coaching views (`services.forecast_view`,
`services.pipeline_view`).

Documents as of now (`OrgCache.remember_now`) are kept per minute, and a new minute does not make anyone wait:
the last minute's answer is served while one background thread computes this minute's. (Computed in line, the
pipeline of a 100,000-deal org stalled every request of its scope for up to a second each minute: the API
benchmark's p99.)
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from closewise.db import tables
from closewise.db.bulk import count_rows, last_ids
from closewise.domain.scope import Scope
from closewise.services.org_data import OrgData, load_org, scoped

log = logging.getLogger("closewise.cache")


def data_stamp(engine: Engine) -> str:
    """What changes when the data a forecast reads changes: the last change row, deal and activity, and the
    number of deals (deletions)."""
    with engine.connect() as connection:
        ids = last_ids(connection, (tables.opportunity_changes, tables.opportunities, tables.activities))
        count = count_rows(connection, tables.opportunities)
    return "-".join(str(v) for v in (*ids.values(), count))


_MISSING: Any = object()


class OrgCache:
    """The org as last read (one per data stamp), the scoped views of it that were asked for, so the timeline
    of each is built once (analytics memoise by the timeline's identity), and documents computed from them; all
    dropped when the data changes.

    Each is built once even when many requests ask at the same moment: the first builds it, the others wait for
    it. (Building in parallel multiplied the work: a document kept per minute, such as the pipeline as of now,
    was recomputed by every request that arrived in its first second, each slowing the others.)"""

    def __init__(self, *, scoped_views: int = 32, documents: int = 128) -> None:
        self._lock = threading.Lock()
        self._org: tuple[str, OrgData] | None = None
        self._views: OrderedDict[tuple[str, frozenset[int]], OrgData] = OrderedDict()
        self._documents: OrderedDict[Hashable, Any] = OrderedDict()
        self._size = scoped_views
        self._documents_size = documents
        self._building: dict[Hashable, threading.Lock] = {}
        self._refreshing: dict[Hashable, threading.Thread] = {}

    def org(self, engine: Engine, stamp: str | None = None) -> tuple[str, OrgData]:
        stamp = stamp or data_stamp(engine)

        def found() -> Any:
            return self._org if self._org is not None and self._org[0] == stamp else _MISSING

        def keep(loaded: tuple[str, OrgData]) -> None:
            self._org = loaded
            self._views.clear()
            self._documents.clear()

        loaded: tuple[str, OrgData] = self._once(("org", stamp), found, lambda: (stamp, load_org(engine)), keep)
        return loaded

    def remember(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """`build()`, kept under `key` (which must name the data stamp and everything else the result depends
        on) until the org is read again."""

        def found() -> Any:
            if key not in self._documents:
                return _MISSING
            self._documents.move_to_end(key)
            return self._documents[key]

        def keep(value: Any) -> None:
            self._documents[key] = value
            while len(self._documents) > self._documents_size:
                self._documents.popitem(last=False)

        return self._once(("document", key), found, build, keep)

    def remember_now(self, key: Hashable, moment: datetime, build: Callable[[datetime], Any]) -> Any:
        """`build(moment)` for a document as of now, `moment` being now to the minute; `key` names the data stamp
        and everything else but the moment. When the key was last built for an earlier minute, that answer is
        returned at once and one background thread builds this minute's, which the next callers get; the first
        build of a key is made in line (once, the others waiting for it, as `remember`)."""
        slot = ("now", key)
        with self._lock:
            entry = self._documents.get(slot)
            if entry is not None:
                self._documents.move_to_end(slot)
                built_for, value = entry
                if built_for < moment and slot not in self._refreshing:
                    worker = threading.Thread(target=self._refresh, args=(slot, moment, build),
                                              name="closewise-refresh", daemon=True)
                    self._refreshing[slot] = worker
                    worker.start()
                return value
        built: tuple[datetime, Any] = self.remember(slot, lambda: (moment, build(moment)))
        return built[1]

    def _refresh(self, slot: Hashable, moment: datetime, build: Callable[[datetime], Any]) -> None:
        try:
            value = build(moment)
            with self._lock:
                entry = self._documents.get(slot)
                if entry is not None and entry[0] < moment:  # still kept (the data has not changed meanwhile)
                    self._documents[slot] = (moment, value)
        except Exception:  # the next caller tries again; the previous answer stays until then
            log.exception("could not refresh %r", slot)
        finally:
            with self._lock:
                self._refreshing.pop(slot, None)

    def refreshing(self) -> list[threading.Thread]:
        """The background refreshes under way (tests wait for them)."""
        with self._lock:
            return list(self._refreshing.values())

    def scoped(self, stamp: str, org: OrgData, scope: Scope) -> OrgData:
        if scope.owner_ids is None:
            return org
        key = (stamp, scope.owner_ids)

        def found() -> Any:
            view = self._views.get(key)
            if view is None:
                return _MISSING
            self._views.move_to_end(key)
            return view

        def keep(view: OrgData) -> None:
            self._views[key] = view
            while len(self._views) > self._size:
                self._views.popitem(last=False)

        view: OrgData = self._once(("view", key), found, lambda: scoped(org, scope), keep)
        return view

    def _once(self, key: Hashable, found: Callable[[], Any], build: Callable[[], Any],
              keep: Callable[[Any], None]) -> Any:
        """What `found()` has under the cache's lock, else `build()` kept by `keep` — built by one caller at a
        time per `key`; the others wait for it and take its result (or build it themselves if it failed)."""
        with self._lock:
            value = found()
            if value is not _MISSING:
                return value
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                value = found()
                if value is not _MISSING:
                    return value
            try:
                value = build()
                with self._lock:
                    keep(value)
                return value
            finally:
                with self._lock:
                    if self._building.get(key) is gate:
                        del self._building[key]
