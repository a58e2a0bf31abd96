"""The donor page says when the donor is recalled (review: it said "approved" with no lookback and nothing about the
recall covering every lot of the donor, so QA reading the donor saw an approval alone)."""
from __future__ import annotations

from mscbatch.recall import services
from tests.conftest import PASSWORD
from tests.integration.test_donors import user
from tests.integration.test_recall_lookbacks import _section
from tests.integration.test_recall_support import scene


def test_the_donor_page_names_the_recall_of_the_donor_and_its_end(app, users, client_as):  # type: ignore[no-untyped-def]
    found = scene(app)
    with app.extensions["mscbatch.db"].new_session() as session:
        started = services.start_recall(session, user(session, "qa"), scope="donor", target_id=found.donor_id,
                                        reason="Donor reported a hepatitis C diagnosis", password=PASSWORD)
        session.commit()
    url = f"/donors/{found.donor_id}"
    section = _section(client_as("qa").get(url).get_data(as_text=True), 'id="lookbacks"', "</section>")
    assert f"Recall R-{started.recall_id}" in section and f"/recalls/{started.recall_id}" in section
    assert "Donor reported a hepatitis C diagnosis" in section and "It covers every lot from this donor" in section
    tech = _section(client_as("technician").get(url).get_data(as_text=True), 'id="lookbacks"', "</section>")
    assert f"Recall R-{started.recall_id}" in tech and f"/recalls/{started.recall_id}" not in tech
    with app.extensions["mscbatch.db"].new_session() as session:
        services.end_recall(session, user(session, "qa"), started.recall_id, reason="Wrong donor code on the notice",
                            password=PASSWORD)
        session.commit()
    section = _section(client_as("qa").get(url).get_data(as_text=True), 'id="lookbacks"', "</section>")
    assert "ended (found invalid)" in section and "It covers every lot" not in section
