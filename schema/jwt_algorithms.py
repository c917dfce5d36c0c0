"""The JWT algorithms the API accepts, apart from PyJWT: the settings check
SUBLEDGER_JWT_ALGORITHMS against them in every process, and only the API verifies tokens."""
from __future__ import annotations

#: The algorithms a JWKS key may verify (RSA, RSA-PSS and ECDSA); HS256 is the shared secret's.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
