"""``[accounts.x]``: one account's X (API v2) connection, read by the X channel itself.

Registered as the ``x`` entry of the ``seqengine.account_sections`` entry point group, so the
workspace loader hands this class the table (see :class:`seqengine.runtime.ChannelConfig`).
"""

from __future__ import annotations

from typing import ClassVar, Final, Self

import attrs

from seqengine import Account
from seqengine.runtime import ChannelConfig, ConfigTable, Secret

__all__ = ["DEFAULT_X_URL", "XConfig"]

DEFAULT_X_URL: Final = "https://api.x.com"

_KEYS: Final = (
    "access_token",
    "base_url",
    "client_id",
    "client_secret",
    "refresh_token",
    "user_id",
)


@attrs.frozen
class XConfig(ChannelConfig):
    """An account's X (API v2) connection: OAuth 2 user token, optionally refreshable."""

    example: ClassVar[str] = 'user_id = "2244994945"'

    user_id: str
    access_token: Secret
    refresh_token: Secret | None = None
    client_id: Secret | None = None
    #: For a confidential client: the refresh then authenticates with HTTP Basic.
    client_secret: Secret | None = None
    base_url: str = DEFAULT_X_URL

    @classmethod
    def from_table(cls, table: ConfigTable) -> Self:
        """Read ``[accounts.x]``: ``user_id``, ``access_token`` and the optional refresh keys.

        Raises:
            ConfigError: a key is missing, unknown or wrong (naming the file and key path).
        """
        table.only(_KEYS)
        config = cls(
            user_id=table.identifier("user_id", '"2244994945"'),
            access_token=table.secret("access_token"),
            refresh_token=table.optional_secret("refresh_token"),
            client_id=table.optional_secret("client_id"),
            client_secret=table.optional_secret("client_secret"),
            base_url=table.url("base_url", DEFAULT_X_URL),
        )
        if config.client_secret is not None and config.client_id is None:
            raise table.fail("client_id", 'is required with client_secret, e.g. "env:X_CLIENT_ID"')
        if config.refresh_token is not None and config.client_id is None:
            raise table.fail(
                "client_id",
                'is required with refresh_token (OAuth 2 refresh), e.g. "env:X_CLIENT_ID"',
            )
        return config

    def configure(self, account: Account) -> Account:
        """The account with its X user id (conditions and DMs act as that user)."""
        return attrs.evolve(account, x_user_id=self.user_id)
