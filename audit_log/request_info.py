"""What a request context records about the request: method, path, query parameters, address.

Whatever the client sent, building it never raises and never grows without
bound: it reads the raw query string itself (``request.GET`` raises
``TooManyFieldsSent`` past ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, and the view may
never have needed it), cleans what PostgreSQL cannot store, and keeps at most:

* :data:`MAX_PATH_LENGTH` characters of the path;
* :data:`MAX_QUERY_PARAMETERS` query parameters, each value cut to
  :data:`MAX_QUERY_VALUE_LENGTH` characters, and :data:`MAX_QUERY_LENGTH`
  characters of keys and values in all.

When something was cut, the details carry ``"truncated": [...]`` naming the
keys that were (``"path"``, ``"query_params"``).
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpRequest

from .serialization import JSONValue, clean_text

MAX_PATH_LENGTH = 2_000
MAX_QUERY_PARAMETERS = 100
MAX_QUERY_VALUE_LENGTH = 500
MAX_QUERY_LENGTH = 4_000
MAX_SHORT_VALUE_LENGTH = 100  # method, remote address


def request_details(request: HttpRequest) -> dict[str, JSONValue]:
    """Return ``{"method", "path", "query_params", "remote_addr"}`` of ``request``, capped and cleaned.

    Args:
        request: The request.

    Returns:
        JSON-ready details; with ``"truncated"`` when something was cut.
    """
    truncated: list[JSONValue] = []
    path = clean_text(str(request.path))
    if len(path) > MAX_PATH_LENGTH:
        path = path[:MAX_PATH_LENGTH]
        truncated.append("path")
    query_params, cut = _query_params(request)
    if cut:
        truncated.append("query_params")
    remote_addr = request.META.get("REMOTE_ADDR")
    details: dict[str, JSONValue] = {
        "method": _short(request.method),
        "path": path,
        "query_params": query_params,  # type: ignore[dict-item]  # dict[str, list[str]] is JSON
        "remote_addr": _short(remote_addr),
    }
    if truncated:
        details["truncated"] = truncated
    return details


def _short(value: object) -> str | None:
    return None if value is None else clean_text(str(value))[:MAX_SHORT_VALUE_LENGTH]


def _raw_query(request: HttpRequest) -> str:
    """The query string decoded the way Django's ``QueryDict`` decodes it."""
    query = request.META.get("QUERY_STRING", "") or ""
    if isinstance(query, bytes):
        raw = query
    elif hasattr(request, "environ"):
        # WSGI passes bytes as latin-1 text (PEP 3333).
        raw = query.encode("iso-8859-1", errors="replace")
    else:
        return str(query)
    try:
        return raw.decode(_encoding(request))
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1")


def _encoding(request: HttpRequest) -> str:
    return request.encoding or settings.DEFAULT_CHARSET


def _query_params(request: HttpRequest) -> tuple[dict[str, list[str]], bool]:
    """Parse at most the capped number of query parameters; return them and whether any were cut."""
    query = _raw_query(request)
    if not query:
        return {}, False
    encoding = _encoding(request)
    # maxsplit: a query of a million parameters is never split whole.
    pieces = query.split("&", MAX_QUERY_PARAMETERS)
    cut = len(pieces) > MAX_QUERY_PARAMETERS
    params: dict[str, list[str]] = {}
    budget = MAX_QUERY_LENGTH
    for piece in pieces[:MAX_QUERY_PARAMETERS]:
        if not piece:
            continue
        # Percent-encoding triples a character: never decode more than a kept value needs.
        limit = 3 * (MAX_QUERY_VALUE_LENGTH + MAX_QUERY_LENGTH)
        if len(piece) > limit:
            piece, cut = piece[:limit], True
        raw_key, _, raw_value = piece.partition("=")
        key = clean_text(unquote_plus(raw_key, encoding=encoding, errors="replace"))
        value = clean_text(unquote_plus(raw_value, encoding=encoding, errors="replace"))
        if len(value) > MAX_QUERY_VALUE_LENGTH:
            value, cut = value[:MAX_QUERY_VALUE_LENGTH], True
        if len(key) + len(value) > budget:
            return params, True
        budget -= len(key) + len(value)
        params.setdefault(key, []).append(value)
    return params, cut
