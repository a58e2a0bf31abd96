"""The audit trail replayed against live rows (mscbatch.audit.reconcile): the pure comparison, no database."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from mscbatch.audit.reconcile import (
    DELETED_BUT_PRESENT,
    INSTANT,
    MISSING,
    NO_INSERT_EVENT,
    NUMERIC,
    UNREADABLE,
    VALUE,
    Difference,
    TableShape,
    reconcile,
    replay,
    same_value,
)
from mscbatch.core.audit_chain import canonical_json, canonical_value

BAG = TableShape("bag", ("id",), {"volume_ml": NUMERIC, "expires_at": INSTANT})
USER = TableShape("user_account", ("id",), {}, frozenset({"password_hash"}))
PARIS_WINTER = timezone(timedelta(hours=1))


def insert(table: str, entity_id: str, **values):  # type: ignore[no-untyped-def]
    """An insert event as the hook writes it: the snapshot's values in canonical text."""
    return ("insert", table, entity_id, None, canonical_json({k: canonical_value(v) for k, v in values.items()}))


def update(table: str, entity_id: str, field: str, new, action: str = "update"):  # type: ignore[no-untyped-def]
    return (action, table, entity_id, field, canonical_value(new))


def delete(table: str, entity_id: str):  # type: ignore[no-untyped-def]
    return ("delete", table, entity_id, None, None)


def check(events, shape, rows, keep=50):  # type: ignore[no-untyped-def]
    return reconcile(events, [(shape, rows)], keep=keep)


def test_insert_then_updates_in_sequence_match_the_live_row():
    events = [insert("bag", "1", id=1, status="stored", total_cells=50_000_000, box_id=None),
              update("bag", "1", "status", "allocated", action="state"),
              update("bag", "1", "box_id", 7),
              update("bag", "1", "status", "dispatched", action="state")]
    live = [{"id": 1, "status": "dispatched", "total_cells": 50_000_000, "box_id": 7}]
    outcome = check(events, BAG, live)
    assert outcome.ok and outcome.rows == 1 and outcome.tables == 1
    assert outcome.lines() == ["1 rows of 1 tables match their audit trail."]


def test_a_value_changed_outside_the_application_is_named_with_both_values():
    events = [insert("bag", "3", id=3, total_cells=50_000_000), update("bag", "3", "total_cells", 40_000_000)]
    outcome = check(events, BAG, [{"id": 3, "total_cells": 400_000_000}])
    assert outcome.listed == [Difference("bag", "3", VALUE, "total_cells", "40000000", "400000000")]
    assert str(outcome.listed[0]) == ('bag id 3, field total_cells: the audit trail says "40000000", '
                                      'the database holds "400000000"')
    assert not outcome.ok and outcome.per_table == {"bag": 1}


def test_a_null_on_either_side_is_a_difference_said_as_no_value():
    outcome = check([insert("bag", "1", id=1, box_id=None, position=4)], BAG, [{"id": 1, "box_id": 9, "position": None}])
    assert [(d.field, d.in_trail, d.in_database) for d in outcome.listed] == [("box_id", None, "9"),
                                                                               ("position", "4", None)]
    assert "the audit trail says no value (null), the database holds \"9\"" in str(outcome.listed[0])


def test_a_live_row_without_an_insert_event_even_if_updated_in_the_trail():
    events = [insert("bag", "1", id=1), update("bag", "2", "status", "held", action="state")]
    outcome = check(events, BAG, [{"id": 1}, {"id": 2, "status": "held"}, {"id": 3}])
    assert [(d.entity_id, d.kind) for d in outcome.listed] == [("2", NO_INSERT_EVENT), ("3", NO_INSERT_EVENT)]
    assert "bag id 3: the row is in the database, but the audit trail has no insert event" in str(outcome.listed[1])


def test_a_deleted_row_that_still_exists_and_a_row_missing_without_a_delete_event():
    events = [insert("bag", "1", id=1), insert("bag", "2", id=2), delete("bag", "1"), insert("bag", "5", id=5),
              delete("bag", "5")]
    outcome = check(events, BAG, [{"id": 1}])
    assert [(d.entity_id, d.kind) for d in outcome.listed] == [("1", DELETED_BUT_PRESENT), ("2", MISSING)]
    assert "records its deletion, but the row is still in the database" in str(outcome.listed[0])
    assert "bag id 2: the audit trail records this row and no deletion of it, but it is missing" in \
        str(outcome.listed[1])


def test_a_key_inserted_again_after_its_delete_starts_a_new_record():
    events = [insert("bag", "1", id=1, status="stored"), update("bag", "1", "status", "held", action="state"),
              delete("bag", "1"), insert("bag", "1", id=1, status="stored")]
    assert check(events, BAG, [{"id": 1, "status": "stored"}]).ok
    assert check(events[:3], BAG, []).ok  # deleted, and gone


def test_hidden_fields_are_not_compared_and_never_printed():
    events = [insert("user_account", "1", id=1, password_hash="(hidden)", totp=None),
              update("user_account", "1", "password_hash", "(hidden)")]
    shape = TableShape("user_account", ("id",), {}, frozenset({"password_hash", "totp"}))
    assert check(events, shape, [{"id": 1, "password_hash": "argon2$other", "totp": None}]).ok
    outcome = check(events, shape, [{"id": 1, "password_hash": "argon2$x", "totp": "secret-seed"}])
    assert [(d.field, d.in_trail, d.in_database) for d in outcome.listed] == [("totp", None, "(hidden)")]
    assert "secret-seed" not in "\n".join(outcome.lines())


def test_a_column_added_by_a_later_migration_is_compared_only_once_an_update_set_it():
    events = [insert("bag", "1", id=1, status="stored"), insert("bag", "2", id=2, status="stored"),
              update("bag", "2", "label_code", "A")]
    live = [{"id": 1, "status": "stored", "label_code": "anything"}, {"id": 2, "status": "stored", "label_code": "B"}]
    outcome = check(events, BAG, live)
    assert [(d.entity_id, d.field, d.in_trail, d.in_database) for d in outcome.listed] == [("2", "label_code", "A", "B")]


def test_a_snapshot_field_the_live_table_no_longer_has_is_not_a_difference():
    assert check([insert("bag", "1", id=1, dropped_column="x")], BAG, [{"id": 1}]).ok


def test_events_of_other_tables_and_other_actions_are_ignored():
    events = [insert("bag", "1", id=1, status="stored"),
              ("login", "bag", "1", None, None), ("signature_refused", "bag", "1", "status", "released"),
              insert("not_audited", "1", id=1), ("insert", "bag", None, None, "{}")]
    assert check(events, BAG, [{"id": 1, "status": "stored"}]).ok


def test_numeric_values_compare_as_numbers_and_instants_as_instants():
    # what real records do: Numeric(6, 2) gives 62.50 back for the 62.5 a service set; a time given in the site's
    # zone comes back in UTC
    assert same_value("62.5", Decimal("62.50"), NUMERIC) and same_value("20", Decimal("20.00"), NUMERIC)
    assert not same_value("62.5", Decimal("62.51"), NUMERIC) and not same_value("62.5", Decimal("625.0"), NUMERIC)
    assert not same_value("62.5", Decimal("62.50"))  # a text column: text equality only
    paris = datetime(2027, 12, 1, 12, 0, tzinfo=PARIS_WINTER)
    assert same_value(canonical_value(paris), paris.astimezone(UTC), INSTANT)
    assert not same_value(canonical_value(paris), paris.astimezone(UTC) + timedelta(microseconds=1), INSTANT)
    assert not same_value(canonical_value(paris.replace(tzinfo=None)), paris.astimezone(UTC), INSTANT)
    assert not same_value("not a number", Decimal(1), NUMERIC) and not same_value("not a time", paris, INSTANT)
    assert not same_value(None, Decimal(0), NUMERIC) and not same_value("0", None, NUMERIC)


def test_dates_booleans_and_json_text_compare_by_their_canonical_text():
    assert same_value("2026-11-10", date(2026, 11, 10)) and not same_value("2026-11-10", date(2026, 11, 11))
    assert same_value("true", True) and same_value("false", False) and not same_value("false", True)
    text = '{"bags":[1,2],"dose":"2"}'
    assert same_value(text, text) and not same_value(text, '{"bags":[1,2],"dose":"3"}')


def test_a_real_snapshot_round_trip_of_every_kind_matches_its_live_values():
    live = {"id": 9, "volume_ml": Decimal("12.50"), "expires_at": datetime(2027, 12, 1, 11, 0, tzinfo=UTC),
            "partial": True, "measured_on": date(2026, 11, 10), "calculation_json": '{"a": 1}', "note": None}
    as_set = dict(live, volume_ml=Decimal("12.5"), expires_at=datetime(2027, 12, 1, 12, 0, tzinfo=PARIS_WINTER))
    assert check([insert("bag", "9", **as_set)], BAG, [live]).ok


def test_composite_keys_are_joined_as_the_hook_writes_them():
    shape = TableShape("pair", ("fin", "year"))
    outcome = check([insert("pair", "W1234/2026", fin="W1234", year=2026, n=1)], shape,
                    [{"fin": "W1234", "year": 2026, "n": 2}])
    assert [(d.entity_id, d.field) for d in outcome.listed] == [("W1234/2026", "n")]


def test_at_most_the_first_differences_are_listed_and_all_are_counted_per_table():
    events = [insert("bag", str(i), id=i, status="stored") for i in range(1, 61)]
    events += [insert("user_account", "1", id=1, full_name="Ada")]
    bags = [{"id": i, "status": "held"} for i in range(1, 61)]
    outcome = reconcile(events, [(USER, [{"id": 1, "full_name": "Eve"}]), (BAG, bags)])
    assert outcome.total == 61 and outcome.per_table == {"bag": 60, "user_account": 1}
    assert len(outcome.listed) == 50 and outcome.rows == 61 and outcome.tables == 2
    lines = outcome.lines()
    assert lines[0] == "AUDIT TRAIL AND DATABASE DIFFER: 61 difference(s) in 2 table(s) (61 rows of 2 tables checked)."
    assert lines[1].startswith("  bag id 1, field status")  # tables in name order
    assert "  ... and 11 more (the first 50 listed)" in lines
    assert lines[-3:] == ["Differences per table:", "  bag: 60", "  user_account: 1"]


def test_replay_reads_the_events_once_in_order():
    consumed = []

    def events():  # type: ignore[no-untyped-def]
        for event in [insert("bag", "1", id=1, status="stored"), update("bag", "1", "status", "held", "state")]:
            consumed.append(event[0])
            yield event
    trail = replay(events(), ["bag"])
    assert consumed == ["insert", "state"] and trail["bag"]["1"].expected() == {"id": "1", "status": "held"}


def test_an_insert_event_whose_snapshot_was_altered_is_named_not_a_crash():
    events = [("insert", "bag", "1", None, "{not json"), ("insert", "bag", "2", None, '["a list"]')]
    outcome = check(events, BAG, [{"id": 1}, {"id": 2}])
    assert [(d.entity_id, d.kind) for d in outcome.listed] == [("1", UNREADABLE), ("2", UNREADABLE)]
    assert str(outcome.listed[0]) == ("bag id 1: its insert event's snapshot is not readable "
                                      "(run `mscbatch audit verify`)")
