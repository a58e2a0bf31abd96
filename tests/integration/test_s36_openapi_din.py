"""Every `din` of the API says which form it holds (API integrator's review, session 36): the bag records' 13
characters without the check character, or the ward answers' 14 with it; a client joining records on `din` is told
to strip or add the check character."""
from __future__ import annotations


def _dins(node, path=""):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "din" and isinstance(value, dict) and "type" in value:
                yield path, value
            yield from _dins(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _dins(item, path)


def test_every_din_of_the_openapi_document_says_its_form(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    found = list(_dins(spec.get("components", {})))
    assert len(found) >= 4, found
    for where, din in found:
        words = din.get("description", "")
        assert ("13 characters, without its check character" in words
                or "followed by its check character K, 14 characters" in words), (where, din)
