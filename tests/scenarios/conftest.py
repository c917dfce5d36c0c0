"""Billing timelines over HTTP on the test clock: the `api` fixtures of tests/api."""
from tests.api.conftest import api, api_factory, user  # noqa: F401  (fixtures)
