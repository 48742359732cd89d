"""Per-account LinkedIn settings, and building the gateway an account asks for.

``[accounts.linkedin]`` in a workspace gives the session cookies and ``api = "voyager"``
(default) or ``"official"``. The official API additionally needs an OAuth 2 access token and
the member's ``urn:li:person:…``; a host passes those as :class:`LinkedInAccount` values
through ``LinkedInExecutor(accounts={...})``, or the workspace's table gives them (read into a
:class:`~seqengine_linkedin.LinkedInConfig` by the channel itself).
``[accounts.linkedin.endpoints]`` (and ``official_endpoints``) replace entries of the endpoint
tables for the account.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs
import httpx

from seqengine import ConfigError
from seqengine.runtime import Secret
from seqengine_linkedin._config import LinkedInConfig
from seqengine_linkedin._gateway import LinkedInGateway
from seqengine_linkedin._http import Endpoints
from seqengine_linkedin._official import (
    DEFAULT_REST_URL,
    DEFAULT_VERSION,
    OFFICIAL_ENDPOINTS,
    OfficialGateway,
)
from seqengine_linkedin._voyager import DEFAULT_VOYAGER_URL, VOYAGER_ENDPOINTS, VoyagerGateway

__all__ = ["APIS", "LinkedInAccount", "build_gateway", "reveal"]

#: The transports an account may choose (``[accounts.linkedin] api = …``).
APIS: Final = ("voyager", "official")


def reveal(value: Secret | str) -> str:
    """The plain value of a credential (read from the environment for ``env:`` secrets).

    Raises:
        ConfigError: the environment variable is not set (the message names it).
    """
    return value.reveal() if isinstance(value, Secret) else value


def _secret_or_str(value: Any) -> Secret | str:
    if isinstance(value, Secret | str):
        return value
    msg = f"expected a string or a Secret, got {type(value).__name__}"
    raise ConfigError(msg)


def _optional_secret(value: Any) -> Secret | str | None:
    return None if value is None else _secret_or_str(value)


def _table(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType({str(k): str(v) for k, v in (value or {}).items()})


@attrs.frozen
class LinkedInAccount:
    """One account's LinkedIn credentials and transport choice.

    Attributes:
        li_at: the session cookie (a :class:`~seqengine.runtime.Secret` or plain string).
        jsessionid: the ``JSESSIONID`` cookie.
        base_url: the Voyager base URL.
        api: ``"voyager"`` or ``"official"`` (REST for likes and comments).
        access_token: OAuth 2 token for the official API.
        actor_urn: ``urn:li:person:…`` that reacts and comments through the official API.
        rest_base_url: the official REST base URL.
        linkedin_version: the ``LinkedIn-Version`` header, ``YYYYMM``.
        endpoints: replacements for :data:`~seqengine_linkedin.VOYAGER_ENDPOINTS` entries.
        official_endpoints: replacements for
            :data:`~seqengine_linkedin.OFFICIAL_ENDPOINTS` entries.

    Raises:
        ConfigError: ``api`` is unknown, or ``"official"`` without a token and actor urn, or
            an endpoint replacement names an unknown operation or is malformed.
    """

    li_at: Secret | str = attrs.field(repr=False, converter=_secret_or_str)
    jsessionid: Secret | str = attrs.field(repr=False, converter=_secret_or_str)
    base_url: str = DEFAULT_VOYAGER_URL
    api: str = "voyager"
    access_token: Secret | str | None = attrs.field(
        default=None, repr=False, converter=_optional_secret
    )
    actor_urn: str | None = None
    rest_base_url: str = DEFAULT_REST_URL
    linkedin_version: str = DEFAULT_VERSION
    endpoints: Mapping[str, str] = attrs.field(factory=dict, converter=_table)
    official_endpoints: Mapping[str, str] = attrs.field(factory=dict, converter=_table)

    def __attrs_post_init__(self) -> None:
        Endpoints(VOYAGER_ENDPOINTS, self.endpoints)  # raises ConfigError naming the entry
        Endpoints(OFFICIAL_ENDPOINTS, self.official_endpoints)
        if self.api not in APIS:
            msg = f'LinkedIn api must be "voyager" or "official", got {self.api!r}'
            raise ConfigError(msg)
        if self.api == "official" and (self.access_token is None or not self.actor_urn):
            msg = (
                'api = "official" needs access_token (an OAuth 2 token with w_member_social) '
                "and actor_urn ('urn:li:person:…'); give them, or use api = \"voyager\""
            )
            raise ConfigError(msg)

    @classmethod
    def from_config(cls, config: LinkedInConfig, *, account_id: str) -> LinkedInAccount:
        """Build from a workspace's ``[accounts.linkedin]`` settings (:class:`LinkedInConfig`).

        Unset optional keys (``rest_base_url``, ``linkedin_version``) keep this class's
        defaults.

        Raises:
            ConfigError: ``config`` is not a :class:`LinkedInConfig`, or as the class does,
                naming ``account_id``.
        """
        if not isinstance(config, LinkedInConfig):
            msg = (
                f"account {account_id!r}: LinkedIn settings must be a LinkedInAccount or a "
                f"LinkedInConfig, got {type(config).__name__}"
            )
            raise ConfigError(msg)
        optional: dict[str, str] = {}
        if config.rest_base_url is not None:
            optional["rest_base_url"] = config.rest_base_url
        if config.linkedin_version is not None:
            optional["linkedin_version"] = config.linkedin_version
        try:
            return cls(
                li_at=config.li_at,
                jsessionid=config.jsessionid,
                base_url=config.base_url,
                api=config.api,
                access_token=config.access_token,
                actor_urn=config.actor_urn,
                endpoints=config.endpoints,
                official_endpoints=config.official_endpoints,
                **optional,
            )
        except ConfigError as exc:
            msg = f"account {account_id!r}, [accounts.linkedin]: {exc}"
            raise ConfigError(msg) from None


def build_gateway(
    account: LinkedInAccount,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    endpoints: Mapping[str, str] | None = None,
    official_endpoints: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> LinkedInGateway:
    """The gateway ``account`` asks for, with its credentials revealed now.

    ``endpoints``/``official_endpoints`` (the host's) apply first; the account's own
    replacements (from its workspace table) win over them.

    Raises:
        ConfigError: a credential's environment variable is not set.
    """
    voyager = VoyagerGateway(
        reveal(account.li_at),
        reveal(account.jsessionid),
        base_url=account.base_url,
        endpoints={**(endpoints or {}), **account.endpoints},
        transport=transport,
        timeout=timeout,
    )
    if account.api != "official":
        return voyager
    assert account.access_token is not None and account.actor_urn is not None
    return OfficialGateway(
        reveal(account.access_token),
        account.actor_urn,
        voyager,
        base_url=account.rest_base_url,
        version=account.linkedin_version,
        endpoints={**(official_endpoints or {}), **account.official_endpoints},
        transport=transport,
        timeout=timeout,
    )
