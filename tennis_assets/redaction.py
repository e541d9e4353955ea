"""Credentials out of everything a person or a log store can read: storage URLs show their
user but not their password, webhook URLs their host but not their path (for Slack and most
chat services the path is the secret), and query parameters that carry keys are masked.

Every log line, metadata entry, tag and alert that names a URL passes it through here first.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMS = re.compile(r"pass|secret|token|key|signature|sig|auth|credential", re.I)


def redact_url(url: str) -> str:
    """``url`` with its password and secret-looking query values masked; other strings (paths,
    ``journal:...``) unchanged."""
    if not url or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = [(k, MASK if _SECRET_PARAMS.search(k) else v)
                 for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    if not netloc and url.startswith(f"{parts.scheme}:///"):
        # urlunsplit drops an empty host: sqlite:///x.db would come back as sqlite:/x.db.
        rest = parts.path + (f"?{query}" if query else "") + \
            (f"#{parts.fragment}" if parts.fragment else "")
        return f"{parts.scheme}://{rest}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_webhook(url: str) -> str:
    """A webhook's scheme and host only: its path and query are the credential."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}/{MASK}" if parts.scheme else MASK


def redact_text(text: str, *urls: str) -> str:
    """``text`` with each of ``urls`` replaced by its redacted form (for error messages that
    quote a URL, such as a driver's connection error)."""
    for url in urls:
        if url:
            text = text.replace(url, redact_url(url))
            parts = urlsplit(url) if "://" in url else None
            if parts is not None and parts.password:
                text = text.replace(parts.password, MASK)
    return text
