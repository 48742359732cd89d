"""LinkedIn's two JSON layouts, read in one place.

Voyager answers a request in the layout its ``accept`` header asks for:

- **plain** (``application/json``; ``application/graphql`` for the GraphQL endpoints): linked
  records are nested where they are used, and a union value is wrapped in an object keyed by
  its member's type, e.g. ``"eventContent": {"com.linkedin.voyager.messaging.event.MessageEvent":
  {...}}``;
- **normalized** (``application/vnd.linkedin.normalized+json+2.1``, what the web app sends):
  ``{"data": {...}, "included": [record, ...]}``. Every record that has an ``entityUrn`` moves
  to ``included`` and is referenced from where it was by a ``*field`` key holding its urn
  (``"*elements": [urn, ...]``, ``"*miniProfile": urn``); a union value is the member record
  itself with ``"$type"`` naming it.

:func:`plain_json` turns either into the plain shape (``data`` with every ``*field`` resolved
from ``included`` into ``field``; the ``*field`` urn is kept beside it), so every gateway parser
reads one layout. :func:`union_member` reads a union value in both encodings.

The shapes follow what maintained clients read: tomquirk/linkedin-api reads ``data["data"]``
and ``included`` where it sends the normalized header (``search_jobs``, ``add_connection``);
eilonmore/linkedin-private-api resolves ``*toMember``, ``*from``, ``*participants`` and
``*miniProfile`` against ``included`` (``invitation.repository.ts``,
``message.repository.ts``, ``own-profile.response.get.ts``); eracle/OpenOutreach resolves
``*elements`` and ``*field`` references through an urn → record map (``linkedin/api/voyager.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx

from seqengine_linkedin._http import json_of

__all__ = ["GRAPHQL", "NORMALIZED", "PLAIN", "denormalize", "plain_json", "union_member"]

#: The ``accept`` value that asks for the normalized layout (what the web app sends).
NORMALIZED: Final = "application/vnd.linkedin.normalized+json+2.1"
#: The ``accept`` value that asks Voyager REST endpoints for the plain layout.
PLAIN: Final = "application/json"
#: The ``accept`` value maintained clients send to the messaging GraphQL endpoint (plain).
GRAPHQL: Final = "application/graphql"

#: Records nest at most this deep once resolved; deeper references stay as urns.
_MAX_DEPTH: Final = 12


def is_normalized(payload: Any, content_type: str = "") -> bool:
    """Whether ``payload`` is in the normalized layout.

    The ``content-type`` LinkedIn sends with it says so; without one, the envelope does
    (``data`` beside an ``included`` list).
    """
    if not isinstance(payload, Mapping) or "data" not in payload:
        return False
    return "normalized" in content_type or isinstance(payload.get("included"), list)


def denormalize(payload: Any, content_type: str = "") -> Any:
    """The plain shape of ``payload``; a plain payload comes back unchanged.

    ``data`` is returned with every ``*field`` reference resolved into ``field`` (a urn into
    its record, a list of urns into the list of records found). A reference to a record that
    ``included`` does not carry leaves ``field`` absent; the ``*field`` urn stays in place, so
    a parser can still read an id from it.
    """
    if not is_normalized(payload, content_type):
        return payload
    index: dict[str, Mapping[str, Any]] = {}
    for record in payload.get("included") or ():
        if isinstance(record, Mapping):
            urn = record.get("entityUrn")
            if isinstance(urn, str):
                index.setdefault(urn, record)
    return _resolve(payload.get("data"), index, (), 0)


def plain_json(response: httpx.Response) -> Any:
    """The response's JSON in the plain layout (``{}`` for an empty or non-JSON body)."""
    return denormalize(json_of(response), response.headers.get("content-type", ""))


def union_member(value: Any, member_type: str) -> Mapping[str, Any] | None:
    """The ``member_type`` member of a union value, in either layout; None for another member.

    Plain: ``{"<member_type>": {...}}``. Normalized: ``{"$type": "<member_type>", ...}``
    (``_type`` in GraphQL answers).
    """
    if not isinstance(value, Mapping):
        return None
    wrapped = value.get(member_type)
    if isinstance(wrapped, Mapping):
        return wrapped
    if member_type in (value.get("$type"), value.get("_type")):
        return value
    return None


def _resolve(
    value: Any, index: Mapping[str, Mapping[str, Any]], seen: tuple[str, ...], depth: int
) -> Any:
    if isinstance(value, list):
        return [_resolve(item, index, seen, depth) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        out[key] = _resolve(item, index, seen, depth)
    for key, ref in value.items():
        if not (isinstance(key, str) and key.startswith("*") and len(key) > 1):
            continue
        field = key[1:]
        if field in value:
            continue  # the record carries the field itself; it wins
        found = _reference(ref, index, seen, depth)
        if found is not None:
            out[field] = found
    return out


def _reference(
    ref: Any, index: Mapping[str, Mapping[str, Any]], seen: tuple[str, ...], depth: int
) -> Any:
    if isinstance(ref, list):
        records = [_reference(urn, index, seen, depth) for urn in ref]
        return [r for r in records if r is not None]
    if not isinstance(ref, str) or ref in seen or depth >= _MAX_DEPTH:
        return None  # unknown, a cycle, or too deep: the *field urn is all there is
    record = index.get(ref)
    if record is None:
        return None
    return _resolve(record, index, (*seen, ref), depth + 1)
