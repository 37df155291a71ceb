"""Fixtures shared with the member page tests."""

from tests.integration.member_web.conftest import app_client  # noqa: F401
