"""The identity provider's token verifier from settings (docs/identity-providers.md)."""
from __future__ import annotations

from schema.jwks import JwksPolicy, JwksTokens
from subledger.settings import Settings, split_list


def identity_provider(settings: Settings) -> JwksTokens | None:
    """Tokens of the identity provider at SUBLEDGER_JWKS_URL; None keeps HS256 with the secret only."""
    if not settings.jwks_url:
        return None
    policy = JwksPolicy(
        url=settings.jwks_url,
        issuer=settings.jwt_issuer or "",
        audience=split_list(settings.jwt_audience or ""),
        audience_claim=settings.jwt_audience_claim.strip(),
        algorithms=split_list(settings.jwt_algorithms),
        scopes_claim=settings.jwt_scopes_claim.strip(),
        user_claim=settings.jwt_user_claim.strip(),
        scope_prefix=settings.jwt_scope_prefix,
        cache_seconds=settings.jwks_cache_seconds,
        cooldown_seconds=settings.jwks_refresh_cooldown_seconds,
    )
    return JwksTokens(policy, settings.jwt_secret or "")
