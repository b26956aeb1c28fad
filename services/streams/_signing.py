"""The server's signing material: an Ed25519 webhook key (published as a JWKS) and the HMAC key
of callback and claim tokens, derived from it so one secret record in the log carries both.

Webhook signatures are ``t=<unix>,kid=<kid>,ed25519=<base64url>`` over ``<t>.<raw body>``; the
``kid`` is ``ds_`` plus the key's RFC 7638 JWK thumbprint, so it is stable for the key's life
and needs no bookkeeping. Tokens are ``base64url(claims).base64url(hmac)``: they name the
subscription (and its incarnation, so a re-created subscription never honours old tokens), the
generation and wake they are good for, and an expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.streams._subscription_errors import TokenExpiredError, TokenRejectedError

KID_PREFIX = "ds_"
_TOKEN_INFO = b"netscript streams subscription tokens v1"


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE and the signature header use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenClaims:
    """What a callback (webhook) or claim (pull-wake) token is good for."""

    subscription_id: str
    incarnation: str  # of the subscription: a deleted and re-created one gets a new one
    generation: int
    wake_id: str
    kind: str  # "callback" or "claim"
    expires_at: int  # unix seconds


class SigningKey:
    """One Ed25519 key pair and the token key derived from it."""

    def __init__(self, private_key: Ed25519PrivateKey, *, created_at: float) -> None:
        self._private = private_key
        self.created_at = created_at
        raw_public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._x = b64url(raw_public)
        # RFC 7638: the thumbprint hashes the required members in lexicographic order.
        canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": self._x},
                               separators=(",", ":"), sort_keys=True)
        self.kid = KID_PREFIX + b64url(hashlib.sha256(canonical.encode()).digest())
        seed = private_key.private_bytes_raw()
        self._token_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                               info=_TOKEN_INFO).derive(seed)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate(), created_at=time.time())

    @classmethod
    def from_record(cls, value: bytes) -> SigningKey:
        """The key stored by :meth:`to_record`."""
        data = json.loads(value)
        if data.get("alg") != "Ed25519":
            raise ValueError(f"unsupported signing key algorithm {data.get('alg')!r}")
        private = Ed25519PrivateKey.from_private_bytes(unb64url(data["seed"]))
        return cls(private, created_at=float(data["created_at"]))

    def to_record(self) -> bytes:
        """The private key as stored in the (internal) subscriptions topic."""
        return json.dumps({"alg": "Ed25519", "kid": self.kid,
                           "seed": b64url(self._private.private_bytes_raw()),
                           "created_at": self.created_at}).encode()

    # ------------------------------------------------------------------ webhooks

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "use": "sig", "alg": "EdDSA",
                "x": self._x}

    def jwks(self) -> dict[str, Any]:
        """The JWK Set served at ``__ds/jwks.json``."""
        return {"keys": [self.public_jwk()]}

    def sign_webhook(self, body: bytes, *, now: float | None = None) -> str:
        """The ``Webhook-Signature`` header for ``body``."""
        timestamp = int(time.time() if now is None else now)
        signature = self._private.sign(f"{timestamp}.".encode() + body)
        return f"t={timestamp},kid={self.kid},ed25519={b64url(signature)}"

    # ------------------------------------------------------------------ tokens

    def issue_token(self, claims: TokenClaims) -> str:
        payload = b64url(json.dumps({
            "sub": claims.subscription_id, "inc": claims.incarnation,
            "gen": claims.generation, "wake": claims.wake_id, "kind": claims.kind,
            "exp": claims.expires_at,
        }, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def read_token(self, token: str, *, now: float | None = None) -> TokenClaims:
        """The claims of a genuine, unexpired token.

        Raises :class:`TokenRejectedError` for a malformed or forged token and
        :class:`TokenExpiredError` for an expired one.
        """
        payload, dot, mac = token.partition(".")
        if not dot or not hmac.compare_digest(mac, self._mac(payload)):
            raise TokenRejectedError("the bearer token is not one this server issued; use the "
                                     "token of the current wake")
        try:
            data = json.loads(unb64url(payload))
            claims = TokenClaims(
                subscription_id=str(data["sub"]), incarnation=str(data["inc"]),
                generation=int(data["gen"]), wake_id=str(data["wake"]),
                kind=str(data["kind"]), expires_at=int(data["exp"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenRejectedError("the bearer token is malformed") from exc
        if claims.expires_at < (time.time() if now is None else now):
            raise TokenExpiredError("the bearer token has expired; wait for the next wake")
        return claims

    def _mac(self, payload: str) -> str:
        return b64url(hmac.new(self._token_key, payload.encode(), hashlib.sha256).digest())
