"""Text from users (names, labels, notes, topics, reasons) made safe to print on a terminal or
write to a log: control and invisible formatting characters are shown as escapes, so a username
cannot clear a line, move the cursor, reorder text (bidi overrides) or forge a log line."""

from __future__ import annotations

import logging
import unicodedata

# Cc (C0, DEL, C1), Cf (bidi overrides, zero-width), Cs (lone surrogates), Zl/Zp (line breaks
# a log reader honours), Cn (unassigned); spaces (Zs, e.g. the ideographic one) and
# private-use glyphs print as themselves
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: object) -> str:
    """`text` as a string with every control or invisible formatting character escaped."""
    text = str(text)
    if text.isprintable():  # the usual case, checked in C
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _ESCAPED_CATEGORIES else char
        for char in text
    )


def install_log_escaping() -> None:
    """Escape control characters in the message of every log record this process makes, for
    every handler (tracebacks keep their own lines). Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "escapes_control_characters", False):
        return

    def safe_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call is the handler's to report, as before
            return record
        safe = visible(message)
        if safe != message:
            record.msg, record.args = safe, None
        return record

    safe_record.escapes_control_characters = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(safe_record)
