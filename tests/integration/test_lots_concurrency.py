"""DIN allocation under concurrent requests (DOMAIN.md section 7: unique per FIN and year, never reused).

20 threads, each with its own session and connection from the app's engine, against the same database (a
file for SQLite, one database for PostgreSQL), all released at once by a barrier."""
from __future__ import annotations

import threading

from sqlalchemy import select

from mscbatch.audit.context import use_case
from mscbatch.core.identifiers import parse_din
from mscbatch.lots.din_allocation import allocate_dins
from mscbatch.lots.models import DinCounter

THREADS = 20


def test_20_concurrent_allocations_for_one_fin_and_year_get_20_distinct_sequences(app):
    database = app.extensions["mscbatch.db"]
    barrier = threading.Barrier(THREADS)
    dins: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def allocate() -> None:
        session = database.new_session()
        try:
            barrier.wait(timeout=30)
            with use_case(session, None, "concurrency test"):
                din = allocate_dins(session, "X9999", 2026, 1)[0]
            with lock:
                dins.append(din.text + din.check_character)
        except BaseException as error:  # noqa: BLE001 - reported below
            with lock:
                errors.append(error)
        finally:
            session.close()

    threads = [threading.Thread(target=allocate) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    sequences = sorted(parse_din(din).sequence for din in dins)
    assert sequences == list(range(1, THREADS + 1))
    with database.new_session() as session:
        assert session.scalar(select(DinCounter.last_sequence).where(DinCounter.fin == "X9999",
                                                                     DinCounter.year == 26)) == THREADS


def test_a_rolled_back_allocation_leaves_no_gap_and_later_ones_continue(app):
    database = app.extensions["mscbatch.db"]
    with database.new_session() as session:
        with use_case(session, None, "first"):
            assert [d.sequence for d in allocate_dins(session, "X9999", 26, 3)] == [1, 2, 3]
        try:
            with use_case(session, None, "failed use case"):
                allocate_dins(session, "X9999", 26, 2)
                raise RuntimeError("the cryopreservation failed after allocating")
        except RuntimeError:
            pass
        with use_case(session, None, "next"):
            # nothing carried 4-5 (rolled back): handing them out now is not a reuse
            assert allocate_dins(session, "X9999", 26, 1)[0].sequence == 4
        with use_case(session, None, "other year"):
            assert allocate_dins(session, "X9999", 27, 1)[0].text == "X999927000001"
