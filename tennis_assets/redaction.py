"""Credentials out of everything a person or a log store can read: storage URLs show their
user but not their password, webhook URLs their host but not their path (for Slack and most
chat services the path is the secret), and query parameters that carry keys are masked.

Every log line, metadata entry, tag and alert that names a URL passes it through here first.

A password may hold any character, percent-encoded or not: ``postgresql://u:a#b/c?d@host/db``
is what a user types and what database drivers read (SQLAlchemy's URL takes everything up to the
``@`` before the host as the password), while a generic URL parser (``urlsplit``) stops the
authority at the first ``/``, ``?`` or ``#`` and so finds no password at all. Here the
credentials run from ``scheme://`` to the last ``@`` before the host; where that is ambiguous
(an ``@`` also after the host) more is masked, never less.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMS = re.compile(r"pass|secret|token|key|signature|sig|auth|credential", re.IGNORECASE)


class _Credentials(NamedTuple):
    scheme: str  # without "://"
    user: str
    password: str | None  # as written (maybe percent-encoded); None: no password field
    rest: str  # host[:port] and everything after it


def _credentials(url: str) -> _Credentials | None:
    """The URL's credentials as a driver reads them; None when it has none."""
    scheme, sep, after = url.partition("://")
    if not sep or "@" not in after:
        return None
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    tail = after[len(netloc):]
    if "@" in netloc and "@" not in tail:
        # A well-formed URL (anything unusual in the password percent-encoded).
        userinfo, rest = netloc.rsplit("@", 1)
        rest += tail
    else:
        # A '/', '?' or '#' in the password ends urlsplit's authority early: everything up to
        # the last '@' is the user information.
        userinfo, rest = after.rsplit("@", 1)
    user, colon, password = userinfo.partition(":")
    return _Credentials(scheme, user, password if colon else None, rest)


def _mask_query(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    query = parts.query
    if not query:
        return url
    pairs = [(k, MASK if _SECRET_PARAMS.search(k) else v)
             for k, v in parse_qsl(query, keep_blank_values=True)]
    query = urlencode(pairs, safe="*")
    if not parts.netloc and url.startswith(f"{parts.scheme}:///"):
        # urlunsplit drops an empty host: sqlite:///x.db would come back as sqlite:/x.db.
        rest = parts.path + f"?{query}" + (f"#{parts.fragment}" if parts.fragment else "")
        return f"{parts.scheme}://{rest}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redact_url(url: str) -> str:
    """``url`` with its password and secret-looking query values masked; other strings (paths,
    ``journal:...``) unchanged."""
    if not url or "://" not in url:
        return url
    found = _credentials(url)
    if found is not None:
        userinfo = found.user if found.password is None else f"{found.user}:{MASK}"
        url = f"{found.scheme}://{userinfo}@{found.rest}"
    return _mask_query(url)


def redact_webhook(url: str) -> str:
    """A webhook's scheme and host only: its path and query are the credential."""
    if not url:
        return url
    found = _credentials(url)
    try:
        parts = urlsplit(url if found is None else f"{found.scheme}://{found.rest}")
    except ValueError:
        return MASK
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}/{MASK}" if parts.scheme else MASK


def secrets_of(url: str) -> list[str]:
    """The password of ``url`` as written and as decoded (a driver's message may quote
    either); [] when it has none."""
    found = _credentials(url) if url and "://" in url else None
    if found is None or not found.password:
        return []
    return sorted({found.password, unquote(found.password)}, key=len, reverse=True)


def redact_text(text: str, *urls: str) -> str:
    """``text`` with each of ``urls`` replaced by its redacted form, and its password wherever
    else it appears (for error messages that quote a URL, such as a driver's connection
    error)."""
    for url in urls:
        if url:
            text = text.replace(url, redact_url(url))
            for secret in secrets_of(url):
                text = text.replace(secret, MASK)
    return text
