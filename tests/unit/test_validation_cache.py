"""A repeated document is validated once: the request limits must not defeat
strawberry's ValidationCache (its key holds the validation rule classes). That
the limits still refuse deep and wide documents is tests/api/test_guards.py's."""
from __future__ import annotations

from strawberry.extensions.validation_cache import DEFAULT_MAXSIZE, _get_validate_cache

from schema.build import build_schema


async def test_a_repeated_document_is_validated_once() -> None:
    schema = build_schema()
    document = "query Twice { __typename }"
    cache = _get_validate_cache(DEFAULT_MAXSIZE)
    first = await schema.execute(document)
    hits = cache.cache_info().hits
    second = await schema.execute(document)
    assert first.errors is None and second.errors is None
    assert cache.cache_info().hits == hits + 1
