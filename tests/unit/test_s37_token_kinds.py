"""Session 37 review: a bad label code says what it means by its kind, never by its words.

The bedside check (custody.checks.scan_reference) told a forged label from a scan not read by the text of the error
(`reason.startswith("the signature does not match")`): a code label_token says was altered (a signature longer than
any label prints, a Unicode look-alike letter) was told "scan the label again" while the label check page called it
not genuine, and any rewording in label_token would have turned a forged code into "scan again". Now every raise of
TokenInvalid gives a kind: UNREADABLE (a read cut short, damaged, nothing scanned, not one of our codes by its
shape) or FORGED (a whole code whose signature does not match, or a code altered), and the check decides by it."""
from __future__ import annotations

import ast
import inspect

import pytest

from mscbatch.core import label_token
from mscbatch.core.identifiers import make_din
from mscbatch.core.label_token import (
    FORGED,
    SIGNATURE_CHARS,
    UNREADABLE,
    TokenInvalid,
    make_token,
    verify_token,
)
from mscbatch.custody import checks
from mscbatch.custody.checks import CALL_UNIT, NOT_READ, scan_reference

KEY = b"test-label-key-0123456789abcdef"
BAG = make_din("X9999", 26, 1).typed
TOKEN = make_token(BAG, KEY)
REF, SIGNATURE = TOKEN.split(".")
URL = f"https://mscbatch.example.org/v/{TOKEN}"


def _with_letter(letter: str) -> str:
    """A genuine bare token whose signature holds `letter`."""
    for sequence in range(1, 500):
        token = make_token(make_din("X9999", 26, sequence).typed, KEY)
        if letter in token.split(".")[1]:
            return token
    raise AssertionError(f"no signature with {letter}")


def _look_alike() -> str:
    """A genuine code with one I of its signature replaced by the dotless i (upper-cases to I)."""
    token = _with_letter("I")
    ref, signature = token.split(".")
    return f"{ref}.{signature.replace('I', chr(0x131), 1)}"


def _wrong_signature() -> str:
    return f"{REF}.{SIGNATURE[:-1]}{'A' if SIGNATURE[-1] != 'A' else 'B'}"


#: (what the scan is, the scan, the start of the reason it gets, its kind): one row (at least) for each raise
CASES = [
    ("not text", 12345, "the scanned code is not text", UNREADABLE),
    ("nothing scanned", "  \r\n", "the scanned code is empty", UNREADABLE),
    ("a page of text", "A" * 501, "the scanned code is too long", UNREADABLE),
    ("another web address", "https://mscbatch.example.org/lots/12", "not a mscbatch label code", UNREADABLE),
    ("a web address cut before /v/", URL[:20], "not a mscbatch label code", UNREADABLE),
    ("a dotless i in a whole code", _look_alike(), "malformed label code: it holds a character a label never prints "
                                                   "(the code was altered)", FORGED),
    ("the look-alike in the camera's URL", f"https://h.example/v/{_look_alike()}",
     "malformed label code: it holds a character a label never prints (the code was altered)", FORGED),
    ("a long s in the bag reference", "MSC-2026-0001-\u017f0." + make_token("MSC-2026-0001-S0", KEY).split(".")[1],
     "malformed label code: it holds a character a label never prints (the code was altered)", FORGED),
    ("other text with an accent", "Mme Dup\u00f6nt.ABC", "malformed label code: it holds a character a label never "
                                                         "prints", UNREADABLE),
    ("a look-alike in a code cut short", _look_alike()[:_look_alike().index(chr(0x131)) + 1],
     "malformed label code: it holds a character", UNREADABLE),
    ("a bag number without its code", REF, "malformed label code: expected <bag reference>.<signature>", UNREADABLE),
    ("two codes run together", TOKEN + TOKEN, "malformed label code: expected", UNREADABLE),
    ("another code with a dot", "Mme Dupont.ABCDEFGHIJKLMNOPQRSTUVWXYZ", "malformed label code: the bag reference",
     UNREADABLE),
    ("cut after the dot", REF + ".", "the label code has no signature", UNREADABLE),
    ("a character no base32 holds", TOKEN[:-1] + "!", "malformed label code: the signature holds", UNREADABLE),
    ("cut short", TOKEN[:20], "the signature is too short", UNREADABLE),
    ("cut by one character", TOKEN[:-1], "the signature is too short", UNREADABLE),
    ("a signature too long", TOKEN + "A", "the signature is too long: the code was altered", FORGED),
    ("a whole signature changed by one character", _wrong_signature(), "the signature does not match", FORGED),
    ("another unit's key", make_token(BAG, b"another unit's key"), "the signature does not match", FORGED),
    ("another bag's reference under this signature", f"{make_din('X9999', 26, 2).typed}.{SIGNATURE}",
     "the signature does not match", FORGED),
]


@pytest.mark.parametrize(("how", "scan", "reason", "kind"), CASES, ids=[c[0] for c in CASES])
def test_every_refusal_of_a_code_says_its_kind(how: str, scan: object, reason: str, kind: str) -> None:
    with pytest.raises(TokenInvalid) as caught:
        verify_token(scan, KEY)  # type: ignore[arg-type]
    assert caught.value.reason.startswith(reason), (how, caught.value.reason)
    assert caught.value.kind == kind, (how, caught.value.reason)
    assert caught.value.forged is (kind == FORGED)


def test_a_full_length_wrong_signature_is_forged_and_a_short_one_unreadable() -> None:
    assert len(_wrong_signature().split(".")[1]) == SIGNATURE_CHARS
    for length in range(1, SIGNATURE_CHARS):
        with pytest.raises(TokenInvalid) as caught:
            verify_token(f"{REF}.{SIGNATURE[:length]}", KEY)
        assert caught.value.kind == UNREADABLE, length


def test_every_raise_in_label_token_is_covered_by_a_case_above() -> None:
    """A raise added to verify_token without a row here fails: each reason's words appear in CASES."""
    source = inspect.getsource(label_token)
    reasons: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and \
                getattr(node.exc.func, "id", None) == "TokenInvalid":
            assert len(node.exc.args) == 2, ast.unparse(node)  # the reason and the kind, at every raise
            reasons.append(ast.literal_eval(node.exc.args[0]))
    assert len(reasons) == 13
    covered = {c[2] for c in CASES}
    for reason in reasons:
        assert any(reason.startswith(start) for start in covered), reason


def test_a_kind_is_required_and_checked() -> None:
    with pytest.raises(TypeError):
        TokenInvalid("the signature does not match")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="kind"):
        TokenInvalid("whatever", "altered")


# ---- the bedside check decides by the kind -----------------------------------------------------------------------

@pytest.mark.parametrize(("how", "scan", "reason", "kind"),
                         [c for c in CASES if isinstance(c[1], str) and checks._TOKEN_LIKE.search(c[1])],
                         ids=[c[0] for c in CASES if isinstance(c[1], str) and checks._TOKEN_LIKE.search(c[1])])
def test_the_bedside_scan_says_not_genuine_for_a_forged_code_and_not_read_for_the_rest(
        how: str, scan: str, reason: str, kind: str) -> None:
    ref, problem = scan_reference(scan, KEY)
    assert ref is None
    if kind == FORGED:
        assert problem.startswith(f"The code on the bag label is not genuine ({reason}") and problem.endswith(CALL_UNIT)
    else:
        assert problem == NOT_READ, (how, problem)


@pytest.mark.parametrize(("words", "kind", "forged"), [
    ("the signature does not match: the code was altered", UNREADABLE, False),  # the words say nothing
    ("any words at all", FORGED, True),
])
def test_the_bedside_scan_reads_the_kind_not_the_words(monkeypatch: pytest.MonkeyPatch, words: str, kind: str,
                                                       forged: bool) -> None:
    def refuse(text: str, key: object) -> str:
        raise TokenInvalid(words, kind)

    monkeypatch.setattr(checks, "verify_token", refuse)
    ref, problem = scan_reference(TOKEN, KEY)
    assert ref is None
    if forged:
        assert problem == f"The code on the bag label is not genuine ({words}). {CALL_UNIT}"
    else:
        assert problem == NOT_READ


@pytest.mark.parametrize("typed", ["X99992600000", "X9999260000", "X999926000005PP"])
def test_a_bag_number_of_the_wrong_length_is_told_its_length_not_a_wrong_character(typed: str) -> None:
    """A number cut short (12 characters) failed its check character first and was told "one of its characters is
    wrong": the nurse then looks for a wrong digit instead of the missing one."""
    from mscbatch.custody.checks import scan_reference

    ref, problem = scan_reference(typed, "k" * 32)
    assert ref is None and problem is not None
    assert f"it has {len(typed)} characters; a bag number has 14, the last one boxed" in problem, problem
    assert "one of its characters is wrong" not in problem
