"""Counted nouns and indefinite articles for messages, so none reads "1 problems" or "a imap"."""

from __future__ import annotations

# Word starts with a vowel letter but a consonant sound ("a unique"), and the reverse. An
# abbreviation read letter by letter keeps the vowel rule: "an EWS secret".
_CONSONANT_SOUND = ("eu", "one", "uni", "use")
_VOWEL_SOUND = ("hour", "honest")


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """Return `count` and `noun`, the noun plural unless the count is 1: `1 grant`, `2 grants`.

    `plural_form` is the plural for nouns that do not take an `s`, such as `entries`.
    """
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural_form or noun + 's'}"


def article(word: str) -> str:
    """Return `word` after `a` or `an` by its first sound: `an imap`, `a gmail`."""
    lowered = word.lower()
    if lowered.startswith(_VOWEL_SOUND):
        return f"an {word}"
    if lowered.startswith(_CONSONANT_SOUND):
        return f"a {word}"
    return f"{'an' if lowered[:1] in set('aeiou') else 'a'} {word}"
