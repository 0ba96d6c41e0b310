"""The one escaping of printed data, for a terminal and for HTML alike.

Promises: ``shown(value)`` is ``value`` as text with each control character escaped where it
can be seen (``\\x1b``, ``\\n``, ``\\u202e``): C0 and C1 controls, DEL, and the invisible
characters that reorder or hide text (bidirectional overrides and isolates, zero-width,
byte-order mark); everything else as it is. ``html_text(value)`` is that, HTML-escaped
(quotes too): safe in an element or an attribute, and well-formed XML in an inline SVG.
"""

from __future__ import annotations

import html
import re

# C0 and C1 control characters, DEL, and the invisible characters that reorder or hide
# text (bidirectional overrides and isolates, zero-width, byte-order mark).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def shown(value: object) -> str:
    """``value`` as text fit for a terminal: each control character escaped (``\\x1b``,
    ``\\n``, ``\\u202e``), everything else as it is."""
    return _CONTROL.sub(_escape, str(value))


def html_text(value: object) -> str:
    """``value`` as ``shown`` makes it, escaped for HTML."""
    return html.escape(shown(value))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return repr(char)[1:-1] if ord(char) < 0x100 else f"\\u{ord(char):04x}"
