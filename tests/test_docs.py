"""The README says what the code does: its error table is the error table of the code."""

from __future__ import annotations

import re
from pathlib import Path

from flask_livekit_moderation import errors

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_error_table_lists_every_code_with_its_status():
    section = README.read_text().split("### Errors", 1)[1].split("\n\n", 2)[1]
    rows = set()
    for line in section.splitlines():
        match = re.match(r"\| (\d{3}) \| (.+?) \|", line)
        if match:
            rows |= {(int(match.group(1)), code) for code in re.findall(r"`([A-Z_]+)`", match.group(2))}
    documented = {
        (error.status, error.code)
        for error in errors.ALL
        if error.code not in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
    }
    assert rows == documented
