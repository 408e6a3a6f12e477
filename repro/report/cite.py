"""Citations from ``report/refs.bib``: 'Goodfellow et al. 2014' for a BibTeX key."""

from __future__ import annotations

import re
from pathlib import Path

from repro.claims import REFS_PATH


def bib_entries(path: Path = REFS_PATH) -> dict[str, dict[str, str]]:
    """A minimal BibTeX reader: key -> {field: value} (enough for author, title, year, eprint)."""
    entries: dict[str, dict[str, str]] = {}
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for m in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", text, flags=re.S):
        fields = dict(re.findall(r"(\w+)\s*=\s*[{\"](.*?)[}\"]\s*,?\s*\n", m.group(3) + "\n"))
        entries[m.group(2)] = {k.lower(): _detex(v) for k, v in fields.items()}
    return entries


_ACCENTS = {r"{\o}": "ø", r"{\'e}": "é", r"{\'a}": "á", r"{\"o}": "ö", r"{\"u}": "ü"}


def _detex(value: str) -> str:
    for tex, char in _ACCENTS.items():
        value = value.replace(tex, char)
    return re.sub(r"[{}]", "", value)


def short_cite(key: str, entries: dict[str, dict[str, str]] | None = None) -> str:
    """'Goodfellow et al. 2014' from the BibTeX entry (the key itself if unknown)."""
    entries = bib_entries() if entries is None else entries
    entry = entries.get(key)
    if not entry:
        return key
    authors = [a.strip() for a in entry.get("author", "").split(" and ") if a.strip()]
    last = [a.split(",")[0] if "," in a else a.split()[-1] for a in authors]
    if len(last) <= 2:
        who = " & ".join(last)
    else:
        who = f"{last[0]} et al."
    return f"{who} {entry.get('year', '')}".strip()
