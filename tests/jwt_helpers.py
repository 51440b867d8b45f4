"""Member tokens as a site would issue them, and forged ones, for the identity tests."""

from __future__ import annotations

import base64
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

MEMBER_SECRET = "test-member-jwt-secret-of-32-bytes-at-least"
ISSUER = "https://site.example"
AUDIENCE = "casvault"


@lru_cache(maxsize=None)
def private_key(kind: str) -> Any:
    """A private key of ``kind`` (rsa, ec, ed25519), made once per test run."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


ALG = {"rsa": "RS256", "ec": "ES256", "ed25519": "EdDSA"}


def public_jwk(kind: str) -> dict[str, Any]:
    """The public JWK of ``kind``'s key, with kid and alg, as a site's JWKS lists it."""
    pub = private_key(kind).public_key()
    algo = {"rsa": jwt.algorithms.RSAAlgorithm, "ec": jwt.algorithms.ECAlgorithm,
            "ed25519": jwt.algorithms.OKPAlgorithm}[kind]
    data = json.loads(algo.to_jwk(pub))
    data.update(kid=f"key-{kind}", alg=ALG[kind], use="sig")
    return data


def write_jwks(path: Path, kinds: tuple[str, ...] = ("rsa", "ec", "ed25519")) -> Path:
    """A JWKS file with the public keys of ``kinds``."""
    path.write_text(json.dumps({"keys": [public_jwk(k) for k in kinds]}))
    return path


def claims(sub: str = "alice", **extra: Any) -> dict[str, Any]:
    """A site's usual claims: sub, iat, exp in an hour, issuer and audience."""
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 3600, "iss": ISSUER, "aud": AUDIENCE, **extra}


def hs256(sub: str = "alice", secret: str = MEMBER_SECRET, **extra: Any) -> str:
    """An HS256 member token."""
    return jwt.encode(claims(sub, **extra), secret, algorithm="HS256")


def signed(kind: str, sub: str = "alice", **extra: Any) -> str:
    """An asymmetric member token signed with ``kind``'s private key."""
    return jwt.encode(claims(sub, **extra), private_key(kind), algorithm=ALG[kind], headers={"kid": f"key-{kind}"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def alg_none(sub: str = "alice") -> str:
    """An unsigned token (``alg: none``)."""
    return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims(sub)).encode())}."


def hs256_with_public_key(sub: str = "alice") -> str:
    """The key-confusion forgery: HS256 'signed' with the RSA public key's PEM as the secret."""
    import hashlib
    import hmac

    pem = private_key("rsa").public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "key-rsa"}).encode())
    body = _b64(json.dumps(claims(sub)).encode())
    sig = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def forged_tokens() -> dict[str, str]:
    """Every forgery the identity tests send: each must be refused."""
    good = hs256()
    head, body, sig = good.split(".")
    return {
        "bad_signature": f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}",
        "other_secret": hs256(secret="another-secret-that-is-32-bytes-long!!"),
        "expired": hs256(exp=int(time.time()) - 3600),
        "no_exp": jwt.encode({k: v for k, v in claims().items() if k != "exp"}, MEMBER_SECRET, algorithm="HS256"),
        "alg_none": alg_none(),
        "hs256_with_public_key": hs256_with_public_key(),
        "wrong_aud": hs256(aud="another-service"),
        "wrong_iss": hs256(iss="https://evil.example"),
        "sub_traversal": hs256(sub="../anon-" + "0" * 32),
        "sub_upper": hs256(sub="Alice"),
        "sub_not_string": jwt.encode({**claims(), "sub": 12}, MEMBER_SECRET, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }
