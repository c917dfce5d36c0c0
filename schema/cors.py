"""CORS: which browser origins may call the API (Starlette's CORSMiddleware).

None by default: a browser page on another origin gets no CORS headers and its
preflight (`OPTIONS /graphql`) is refused, as before. With
`SUBLEDGER_CORS_ORIGINS=https://app.example.com,https://admin.example.com` those
origins may send `GET`/`POST` with `Authorization` and `Content-Type`
(`SUBLEDGER_CORS_METHODS`, `SUBLEDGER_CORS_HEADERS` change the lists), and a
preflight's answer is cached by the browser for `SUBLEDGER_CORS_MAX_AGE` seconds.
Credentials (cookies) are never allowed: the API authenticates with a bearer
token, which a page sends itself. `*` allows every origin.
"""
from __future__ import annotations

from dataclasses import dataclass

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware


@dataclass(frozen=True)
class CorsPolicy:
    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    max_age: int

    def middleware(self) -> Middleware:
        return Middleware(
            CORSMiddleware,
            allow_origins=list(self.origins),
            allow_methods=list(self.methods),
            allow_headers=list(self.headers),
            allow_credentials=False,
            # A browser app may read the request id (to quote it to support) and when to retry.
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=self.max_age,
        )
