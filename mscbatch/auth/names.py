"""What a user name and a printed name may hold: two accounts must never look alike on a signature, in the audit
trail or on the Users page. Pure functions, no database."""
from __future__ import annotations

import re
import unicodedata

USERNAME_RULE = ("User name: use only the letters a to z (no accents, no letters of other alphabets), digits, '.', "
                 "'-' or '_': a user name must not look like another one.")
_USERNAME = re.compile(r"[a-z0-9._-]+")

#: categories that print nothing: control and format characters (zero-width space, joiners, direction marks, soft
#: hyphen), private use, unassigned, and line or paragraph separators
_NON_PRINTING = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
#: characters of other categories that print as blank space or nothing at all (fillers, variation selectors)
_BLANK = frozenset({0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0, *range(0xFE00, 0xFE10),
                    *range(0xE0100, 0xE01F0)})
#: the scripts that one Japanese or Korean name writes together in one word
_EAST_ASIAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL", "IDEOGRAPHIC"})


def username_problem(username: str) -> str | None:
    """A user name (already lower case) of ASCII letters, digits, '.', '-' and '_' only: 'qа' with a Cyrillic 'а'
    prints as 'qa' and would be a second 'qa' in every list."""
    return None if _USERNAME.fullmatch(username) else USERNAME_RULE


#: Cyrillic and Greek letters that print as a Latin one in either case (after case folding: the lower-case key of
#: "Т", which prints as "T", is "т"), from Unicode's confusables (UTS #39): a name written wholly in Cyrillic,
#: "ТОМ ТЕСН", prints as the Latin "TOM TECH". Only for comparing names: a name keeps its own letters.
_LOOKS_LATIN = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ѕ": "s", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "һ": "h", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l",
    "α": "a", "β": "b", "ε": "e", "ζ": "z", "η": "h", "ι": "i", "κ": "k", "μ": "m", "ν": "n", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "y", "χ": "x",
})


def name_key(full_name: str) -> str:
    """The form two printed names are compared in: compatibility forms folded (full-width letters, ligatures,
    composed or not), case folded, letters that print as Latin ones read as those, and only letters, their marks
    and digits kept, every other run of characters read as one space. Equal keys print as the same name: "Noah
    Nurse." (a full stop), "Noah-Nurse" and "Noah, Nurse" beside "Noah Nurse" are told apart by a dot a signer's
    reader would not see."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", full_name).casefold())
    kept = "".join(char if unicodedata.category(char)[0] in "LMN" else " " for char in folded.translate(_LOOKS_LATIN))
    return " ".join(kept.split())


def full_name_problem(full_name: str) -> str | None:
    """Why a printed name could pass for another one, or None: a character that prints nothing (a zero-width
    space makes 'Ann Lee' a second 'Ann Lee'), or a word whose letters come from two alphabets (a Cyrillic 'А'
    in 'QА' prints as the Latin 'QA'). Names in one alphabet, with accents or not, and names wholly in another
    alphabet pass."""
    for char in full_name:
        if unicodedata.category(char) in _NON_PRINTING or ord(char) in _BLANK:
            return (f"Full name: remove the invisible character ({_described(char)}): a printed name must show "
                    "every character it holds, or two names that look the same would be two accounts.")
    for word in _words(unicodedata.normalize("NFKC", full_name)):
        scripts = sorted({_script(char) for char in word} - {None})
        if len(scripts) > 1:
            alphabets = " and ".join(s.title() for s in scripts)
            return (f"Full name: the word '{word}' mixes letters of different alphabets ({alphabets}), so it can "
                    "look like another name; type each word in one alphabet.")
    return None


def _words(text: str) -> list[str]:
    """The runs of letters and their marks (an accent typed as a mark of its own stays in its word)."""
    words, word = [], ""
    for char in text:
        if unicodedata.category(char)[0] in "LM":
            word += char
        elif word:
            words, word = [*words, word], ""
    return [*words, word] if word else words


def _described(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed character')}"


def _script(char: str) -> str | None:
    """The alphabet a letter belongs to, read from its Unicode name ('CYRILLIC CAPITAL LETTER A': Cyrillic); None
    for a mark or a modifier letter (an accent, the Hawaiian okina), which belongs to no alphabet of its own."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    head = name.split(" ")[0]
    if not head or head == "MODIFIER":
        return None
    return "CJK" if head in _EAST_ASIAN else head
