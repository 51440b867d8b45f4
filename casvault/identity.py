"""Who a visitor is: a guest (the signed ``anon_id`` cookie) or a member the site vouches for.

Guests: the cookie value is ``anon-<32 hex>.<timestamp>.<signature>``: the id
stays readable, the signature (itsdangerous, keyed by CASVAULT_SECRET_KEY)
proves the server issued it, and the signed timestamp lets the server refuse
a cookie older than CASVAULT_ANON_COOKIE_MAX_AGE and re-issue a fresh one
(sliding) while the guest keeps visiting. The host app's JobManager calls
:func:`verify` with the same secret to learn the owner of a request.

Members: casvault does not own logins. The site vouches for a member with a
JWT (:class:`MemberTokens`) or an authenticating proxy's header accepted only
from trusted addresses (:func:`member_from_header`, :meth:`TrustedProxies.trusts`).
A member's user id is ``u-<sub>``, validated like every user id.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from itsdangerous import BadSignature, Signer, SignatureExpired, TimestampSigner

from .errors import ConfigError
from .validate import ANON_RE, MEMBER_RE

log = logging.getLogger(__name__)

COOKIE_NAME = "anon_id"
_SALT = "casvault.anon_id"
# NOTE: a guest cookie is re-issued once it is older than this share of its
# max-age, so a visitor who comes back now and then never loses it.
REFRESH_FRACTION = 10
MAX_TOKEN_LEN = 8192
LEEWAY_SECONDS = 30
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# --- guests ---------------------------------------------------------------------


@dataclass(frozen=True)
class GuestCookie:
    """A verified guest cookie: the id and when it was issued (None: a cookie from before timestamps)."""

    user_id: str
    issued_at: int | None


def new_guest_id() -> str:
    """A fresh guest id ``anon-<32 hex>``."""
    return "anon-" + uuid.uuid4().hex


def issue(secret: str, user_id: str | None = None) -> tuple[str, str]:
    """(user_id, cookie value) for a new or given guest id, stamped now."""
    user_id = user_id or new_guest_id()
    return user_id, TimestampSigner(secret, salt=_SALT).sign(user_id).decode()


def read_guest(cookie: str | None, secret: str, max_age: int | None = None) -> GuestCookie | None:
    """The guest in a cookie value, or None when it is missing, forged, tampered or older than ``max_age`` seconds."""
    if not cookie or len(cookie) > 200:
        return None
    try:
        value, stamp = TimestampSigner(secret, salt=_SALT).unsign(cookie, max_age=max_age, return_timestamp=True)
        user_id, issued_at = value.decode(), int(stamp.timestamp())
    except SignatureExpired:
        return None
    except (BadSignature, UnicodeDecodeError, ValueError):
        # NOTE: cookies issued before timestamps were signed by a plain Signer
        # with the same salt; they stay valid (and are re-issued stamped) so no
        # guest loses a history on upgrade.
        try:
            user_id, issued_at = Signer(secret, salt=_SALT).unsign(cookie).decode(), None
        except (BadSignature, UnicodeDecodeError):
            return None
    return GuestCookie(user_id, issued_at) if ANON_RE.fullmatch(user_id) else None


def verify(cookie: str | None, secret: str, max_age: int | None = None) -> str | None:
    """The guest id in a cookie value, or None when it is missing, forged, tampered or expired."""
    guest = read_guest(cookie, secret, max_age)
    return guest.user_id if guest else None


def needs_refresh(guest: GuestCookie, max_age: int, now: float | None = None) -> bool:
    """True when the cookie should be re-issued (unstamped, or older than a tenth of its max-age)."""
    if guest.issued_at is None:
        return True
    return (now if now is not None else time.time()) - guest.issued_at > max_age / REFRESH_FRACTION


# --- members ----------------------------------------------------------------------


def member_id(sub: object) -> str | None:
    """``u-<sub>`` when that is a valid member id, else None (``sub`` is never trusted as a path)."""
    if not isinstance(sub, str):
        return None
    candidate = "u-" + sub
    return candidate if MEMBER_RE.fullmatch(candidate) else None


class MemberTokens:
    """Verifies the site's member JWTs: HS256 with a shared secret and/or RS256/ES256/EdDSA from a JWKS.

    ``alg`` is pinned per key: HS256 only against the shared secret, and an
    asymmetric algorithm only when it is the one of the JWKS key the token
    names, so neither ``none`` nor a key-type confusion (HS256 "signed" with
    the public key) passes. ``exp`` and ``sub`` are required; ``iss`` and
    ``aud`` are checked when configured, and a token naming an audience is
    refused unless that audience is configured.
    """

    def __init__(self, *, secret: str | None = None, jwks: str = "", issuer: str = "", audience: str = "",
                 leeway: int = LEEWAY_SECONDS) -> None:
        self.secret = secret or None
        self.issuer = issuer or None
        self.audience = audience or None
        self.leeway = leeway
        self._jwks_client: jwt.PyJWKClient | None = None
        self._jwks_file: Path | None = None
        self._file_keys: tuple[float, jwt.PyJWKSet] | None = None
        self._mutex = threading.Lock()
        if jwks.startswith(("https://", "http://")):
            # NOTE: keys are cached for 5 minutes; an unknown kid refetches at
            # most every 30 s (PyJWT's cooldown), so forged kids cannot make
            # every request hit the site's JWKS endpoint.
            self._jwks_client = jwt.PyJWKClient(jwks, cache_jwk_set=True, lifespan=300, timeout=5)
        elif jwks:
            self._jwks_file = Path(jwks)
            try:
                self._file_jwks()
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                raise ConfigError(f"CASVAULT_MEMBER_JWKS: cannot read a JWK set from {jwks}: {exc}") from None

    @classmethod
    def from_config(cls, config: Any) -> "MemberTokens | None":
        """The verifier the configuration asks for, or None when member JWTs are off."""
        if not config.member_jwt_secret and not config.member_jwks:
            return None
        return cls(secret=config.member_jwt_secret, jwks=config.member_jwks,
                   issuer=config.member_jwt_issuer, audience=config.member_jwt_audience)

    def member(self, token: str | None) -> str | None:
        """The member id a token vouches for, or None when it is missing, forged, expired or off-target."""
        if not token or len(token) > MAX_TOKEN_LEN:
            return None
        try:
            claims = self.claims(token)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.info("member token refused: %s", exc)
            return None
        except OSError as exc:  # the JWKS file went missing: nobody signs in until it is back
            log.warning("member token not checked: %s", exc)
            return None
        found = member_id(claims.get("sub"))
        if found is None:
            log.info("member token refused: sub is not a valid member id")
        return found

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of a token; raises jwt.PyJWTError."""
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if alg == "HS256" and self.secret:
            key: Any = self.secret
        elif alg in ASYMMETRIC_ALGORITHMS and (self._jwks_client or self._jwks_file):
            signing = self._signing_key(token, header.get("kid"))
            if signing.algorithm_name != alg:
                raise jwt.InvalidAlgorithmError(f"the key {signing.key_id!r} is for {signing.algorithm_name}, not {alg}")
            key = signing.key
        else:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg!r} is not accepted")
        return jwt.decode(
            token, key, algorithms=[alg], issuer=self.issuer, audience=self.audience, leeway=self.leeway,
            options={"require": ["exp", "sub"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])},
        )

    def _signing_key(self, token: str, kid: str | None) -> jwt.PyJWK:
        if self._jwks_client is not None:
            return self._jwks_client.get_signing_key_from_jwt(token)
        keys = [k for k in self._file_jwks().keys if k.public_key_use in (None, "sig")]
        if kid is None and len(keys) == 1:
            return keys[0]
        for k in keys:
            if k.key_id == kid:
                return k
        raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS file")

    def _file_jwks(self) -> jwt.PyJWKSet:
        """The JWKS file's keys, re-read when the file changes (key rotation needs no restart)."""
        assert self._jwks_file is not None
        mtime = os.stat(self._jwks_file).st_mtime
        with self._mutex:
            if self._file_keys is None or self._file_keys[0] != mtime:
                data = json.loads(self._jwks_file.read_bytes()[:1_000_000])
                if any(isinstance(k, dict) and "d" in k for k in data.get("keys", ())):
                    raise ValueError("the JWK set holds a private key: publish only the public keys")
                self._file_keys = (mtime, jwt.PyJWKSet.from_dict(data))
            return self._file_keys[1]


@dataclass(frozen=True)
class TrustedProxies:
    """The peers allowed to vouch for a member by header: networks, and (``unix``) a Unix socket's peers."""

    networks: tuple[Network, ...] = ()
    unix: bool = False

    def __bool__(self) -> bool:
        return bool(self.networks) or self.unix

    def trusts(self, peer: str | None) -> bool:
        """True when the socket peer address (as the WSGI server gives it) is a trusted proxy."""
        if not peer:
            return self.unix  # NOTE: gunicorn on a Unix socket gives an empty peer address
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return self.unix and peer.startswith("/")  # a socket path, never a host name
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)


def parse_proxies(spec: str) -> TrustedProxies:
    """CIDRs (comma- or space-separated) of trusted proxies, and ``unix``; raises ConfigError on a bad one."""
    nets = []
    unix = False
    for part in spec.replace(",", " ").split():
        if part == "unix":
            unix = True
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"CASVAULT_TRUSTED_PROXIES: {part!r} is not an address, a CIDR or 'unix'") from None
    return TrustedProxies(tuple(nets), unix)


def member_from_header(value: str | None) -> str | None:
    """The member id of an authenticating proxy's user header (``u-<value>``), or None."""
    if not value or len(value) > 200:
        return None
    return member_id(value.strip())
