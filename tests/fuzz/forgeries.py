"""Forged, altered and damaged label codes: what a scan field must never accept as a genuine bag."""
from __future__ import annotations

from hypothesis import strategies as st

from mscbatch.core.identifiers import check_character
from mscbatch.core.label_token import make_token
from mscbatch.custody.checks import visible

K_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"  # ISO 7064 MOD 37-2 check characters
FOREIGN_KEY = "a-key-this-unit-never-used"


def normal(scan: str) -> str:
    """What a scan means to the app: case, whitespace and invisible characters (a zero-width space, a scanner's
    control suffix: custody.checks.visible) do not matter (keyboard wedges, Caps Lock)."""
    return "".join(visible(scan).split()).upper()


def mutations(token: str) -> st.SearchStrategy[str]:
    index = st.integers(0, len(token) - 1)
    char = st.characters(codec="utf-8") | st.sampled_from(K_ALPHABET + ".-/:2367")
    return st.one_of(
        st.tuples(index, char).map(lambda p: token[:p[0]] + p[1] + token[p[0] + 1:]),  # one character changed
        st.tuples(index, char).map(lambda p: token[:p[0]] + p[1] + token[p[0]:]),  # one inserted
        char.map(lambda c: token + c),  # one appended (a reader that compares a prefix would take it)
        index.map(lambda i: token[:i] + token[i + 1:]),  # one dropped
        index.map(lambda i: token[:i]),  # truncated
        st.tuples(index, index).map(sorted).map(lambda p: token[:p[0]] + token[p[0]:p[1] + 1][::-1]
                                                + token[p[1] + 1:]),  # a run reversed (transposed characters)
    )


def forgeries(token: str, other_token: str) -> st.SearchStrategy[str]:
    """Never the bag of `token`: mutations of it, another bag's reference under its signature, its reference
    signed with another key, a DIN with a wrong check character, arbitrary text and bytes; bare or as a URL."""
    ref, signature = token.split(".")
    other_ref = other_token.split(".")[0]
    din13, good_k = ref[:13], check_character(ref[:13])
    bare = st.one_of(
        mutations(token),
        st.just(f"{other_ref}.{signature}"),
        st.just(make_token(ref, FOREIGN_KEY)),
        st.sampled_from([din13 + k for k in K_ALPHABET if k != good_k]),
        st.text(max_size=60),
        st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    )
    forged = st.one_of(bare, bare.map(lambda s: f"https://ward.example/v/{s}"))
    return forged.filter(lambda s: normal(s).removeprefix("HTTPS://WARD.EXAMPLE/V/")
                         not in {normal(token), normal(ref)})


def wristbands(genuine: str, others: list[str]) -> st.SearchStrategy[str]:
    """Never the patient of `genuine`: it mutated (a character changed, added, dropped, transposed; truncated),
    another patient's, or arbitrary text, bytes, NUL and huge values."""
    hostile = st.one_of(
        mutations(genuine),
        st.sampled_from(others or ["WB-000000"]),
        st.sampled_from(["", " ", "\x00", genuine + "\x00", "\x00" + genuine, genuine[:-1] + "\x00",
                         "\ud800" + genuine, genuine * 1000, "W" * 100_000, f"{genuine}' OR '1'='1", "%"]),
        st.text(max_size=60),
        st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    )
    return hostile.filter(lambda w: normal(w) != normal(genuine))
