"""Secrets never printed: the one place that hides credentials in URLs and in any text.

Used by ``config show`` (text and JSON), ``inspect``, warnings, errors and ``--debug``
tracebacks. A Redis URL can carry a password in three places: ``user:pass@``, a lone
``pass@`` and query parameters (``?password=``, with or without ``username=``). TLS file
paths (``ssl_keyfile=``) are not secrets and stay readable. Works on malformed URLs too
(``redis://[::1``): it never parses, only cuts text.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
# query parameter names whose values are secrets (matched case-insensitively, by substring)
_SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token", "auth", "credential")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def _secret_param(name: str) -> bool:
    low = name.lower()
    return any(p in low for p in _SECRET_PARAMS)


def _redact_query(query: str) -> str:
    parts = re.split(r"([&;])", query)
    out = []
    for part in parts:
        name, eq, _value = part.partition("=")
        out.append(f"{name}={MASK}" if eq and _secret_param(name) else part)
    return "".join(out)


def redact_url(url: str) -> str:
    """``url`` with every credential replaced by ``***`` (user names stay, to tell them apart)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    base, qsep, query = rest.partition("?")
    frag = ""
    if qsep:
        query, hsep, fragment = query.partition("#")
        frag = hsep + fragment
    at = base.rfind("@")
    if at >= 0:  # the last "@": a password may itself hold "@" or "/"
        cred, host = base[:at], base[at + 1 :]
        user, colon, _password = cred.partition(":")
        base = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"
    return f"{scheme}://{base}" + (f"?{_redact_query(query)}{frag}" if qsep else "")


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (error messages, warnings, tracebacks)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts URLs in a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_logger(logger: logging.Logger) -> logging.Logger:
    """Attach the redacting filter to ``logger`` once; returns it."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
