"""The sweeps' own check of "a refused request wrote nothing" (checks.writes over site.State): it sees an UPDATE
(row counts alone did not), on both databases, and leaves out exactly what any request may write."""
from __future__ import annotations

from sqlalchemy import text

from tests.fuzz.checks import writes
from tests.fuzz.site import Site


def _execute(site: Site, sql: str) -> None:
    with site.engine.begin() as connection:
        connection.execute(text(sql))


def test_an_update_a_delete_or_an_insert_is_seen_and_nothing_else(site: Site) -> None:
    site.client("nurse")  # a session to move
    before = site.state()
    again = site.state(before)
    assert (again.tables, again.events, again.seq) == (before.tables, before.events, before.seq), \
        "nothing was written: the same state"
    if site.kind == "sqlite":  # PostgreSQL's marker moves with any write on the server (another database's, CI's
        # second test process, autovacuum): there a snapshot may be taken for nothing (Site._write_marker)
        assert again is before, "nothing was written: no snapshot taken"

    _execute(site, "UPDATE lot SET collection_site = collection_site || ' (moved)' WHERE id = 1")
    after = site.state(before)
    assert [w.split(":")[0] for w in writes(site, "lots.detail", before, after)] == ["lot changed"]

    # the sliding idle window of a session moves with any request: not a write of the request's
    _execute(site, "UPDATE auth_session SET last_seen_at = created_at")
    before, after = after, site.state(after)
    assert writes(site, "lots.detail", before, after) == []
    # nor is a token's last-use stamp (bookkeeping of any API request)
    _execute(site, "UPDATE api_token SET last_used_at = created_at")
    before, after = after, site.state(after)
    assert writes(site, "lots.detail", before, after) == []
    # revoking a token is
    _execute(site, "UPDATE api_token SET revoked_at = created_at WHERE id = (SELECT min(id) FROM api_token)")
    before, after = after, site.state(after)
    assert [w.split(":")[0] for w in writes(site, "lots.detail", before, after)] == ["api_token changed"]
    _execute(site, "UPDATE api_token SET revoked_at = NULL")
    before, after = after, site.state(after)
    # ending a session is
    _execute(site, "UPDATE auth_session SET ended_at = created_at, end_reason = 'fuzz'")
    before, after = after, site.state(after)
    assert [w.split(":")[0] for w in writes(site, "lots.detail", before, after)] == ["auth_session changed"]

    # a wrong-password count is allowed only with the audited refusal that writes it (none here)
    _execute(site, "UPDATE user_account SET failed_logins = failed_logins + 1 WHERE username = 'victim'")
    before, after = after, site.state(after)
    assert [w.split(":")[0] for w in writes(site, "auth.login", before, after)] == [
        "user_account.wrong_password_count changed"]

    _execute(site, "DELETE FROM auth_session")
    before, after = after, site.state(after)
    assert [w.split(":")[0] for w in writes(site, "lots.detail", before, after)] == ["auth_session changed"]
