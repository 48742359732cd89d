"""Where the PostgreSQL tests find their server: ``SEQENGINE_TEST_POSTGRES_URL``."""

from __future__ import annotations

import os

import pytest

URL_ENV = "SEQENGINE_TEST_POSTGRES_URL"


def postgres_url() -> str:
    """The test server's URL; skips the test (with the reason) when it is not set."""
    url = os.environ.get(URL_ENV)
    if not url:
        pytest.skip(f"{URL_ENV} is not set (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    return url
