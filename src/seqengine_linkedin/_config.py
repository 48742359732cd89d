"""``[accounts.linkedin]``: one account's LinkedIn session, read by the LinkedIn channel itself.

Registered as the ``linkedin`` entry of the ``seqengine.account_sections`` entry point group,
so the workspace loader hands this class the table (see
:class:`seqengine.runtime.ChannelConfig`). :class:`~seqengine_linkedin.LinkedInAccount` is
built from it when the executor starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final, Self

import attrs

from seqengine.runtime import ChannelConfig, ConfigTable, Secret
from seqengine_linkedin._voyager import DEFAULT_VOYAGER_URL

__all__ = ["LinkedInConfig"]

_KEYS: Final = (
    "access_token",
    "actor_urn",
    "api",
    "base_url",
    "endpoints",
    "jsessionid",
    "li_at",
    "linkedin_version",
    "official_endpoints",
    "rest_base_url",
)


@attrs.frozen
class LinkedInConfig(ChannelConfig):
    """An account's LinkedIn session (``li_at`` and ``JSESSIONID`` cookies)."""

    example: ClassVar[str] = 'li_at = "env:LI_AT"'

    li_at: Secret
    jsessionid: Secret
    base_url: str = DEFAULT_VOYAGER_URL
    api: str = "voyager"
    access_token: Secret | None = None  # official REST API (api = "official")
    actor_urn: str | None = None
    rest_base_url: str | None = None
    linkedin_version: str | None = None
    #: ``[accounts.linkedin.endpoints]``: Voyager endpoint table entries to replace
    #: (operation → ``"METHOD /path?query"``; names checked when the executor starts).
    endpoints: Mapping[str, str] = attrs.field(factory=dict)
    #: ``[accounts.linkedin.official_endpoints]``: the same for the official REST table.
    official_endpoints: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_table(cls, table: ConfigTable) -> Self:
        """Read ``[accounts.linkedin]``: the session cookies, ``api`` and its endpoints.

        Raises:
            ConfigError: a key is missing, unknown or wrong (naming the file and key path).
        """
        table.only(_KEYS)
        api = table.choice("api", ("voyager", "official"), "voyager")
        config = cls(
            li_at=table.secret("li_at"),
            jsessionid=table.secret("jsessionid"),
            base_url=table.url("base_url", DEFAULT_VOYAGER_URL),
            api=api,
            access_token=table.optional_secret("access_token"),
            actor_urn=table.optional("actor_urn", None),
            rest_base_url=table.url("rest_base_url", "https://api.linkedin.com/rest")
            if "rest_base_url" in table
            else None,
            linkedin_version=table.optional("linkedin_version", None),
            endpoints=_endpoint_table(table, "endpoints"),
            official_endpoints=_endpoint_table(table, "official_endpoints"),
        )
        if api == "official" and (config.access_token is None or not config.actor_urn):
            raise table.fail(
                "api",
                '= "official" needs access_token (OAuth 2, w_member_social) and actor_urn '
                '("urn:li:person:…") for likes and comments; the session cookies still serve '
                "invitations and messages",
            )
        return config


def _endpoint_table(table: ConfigTable, key: str) -> dict[str, str]:
    """``[accounts.linkedin.<key>]``: operation name → ``"METHOD /path?query"``."""
    sub = table.table(key, f'[accounts.linkedin.{key}] me = "GET /me"')
    if sub is None:
        return {}
    out: dict[str, str] = {}
    for name in sub.data:
        entry = sub.string(name, example='"GET /path?query"')
        method, _, path = entry.partition(" ")
        if method.upper() not in ("GET", "POST", "PUT", "DELETE") or not path.startswith("/"):
            raise sub.fail(name, f'must look like "POST /path?query", got {entry!r}')
        out[str(name)] = f"{method.upper()} {path.strip()}"
    return out
