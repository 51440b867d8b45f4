"""Configuration: defaults, overridden by ``CASVAULT_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

LINK_MODES = ("auto", "hardlink", "symlink", "copy")
BLOB_BACKENDS = ("", "file", "s3")
INDEX_BACKENDS = ("", "manifest", "postgres")
LOG_FORMATS = ("plain", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class Config:
    """Everything a store, the server and the CLI need to know."""

    root: Path = Path("./data")
    secret_key: str | None = None
    admin_token: str | None = None
    ingest_token: str | None = None
    link_mode: str = "auto"
    partition_tz: str = "UTC"
    thumb_size: int = 256
    thumb_quality: int = 80
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 64_000_000
    decode_budget_pixels: int = 64_000_000  # pixels this process may hold decoded at once (casvault.decoding)
    quota_max_bytes: int = 0  # 0 = unlimited
    quota_max_count: int = 0  # 0 = unlimited
    member_quota_max_bytes: int = 0  # members' limits; 0 = unlimited
    member_quota_max_count: int = 0
    member_cookie: str = "casvault_member"  # the cookie that carries the site's member JWT
    member_jwt_secret: str | None = None  # HS256 shared secret (>= 32 bytes)
    member_jwks: str = ""  # URL or file of the site's public keys (RS256, ES256, EdDSA)
    member_jwt_issuer: str = ""
    member_jwt_audience: str = ""
    member_auto_claim: bool = True  # hand a guest's history over on the first signed-in request
    trusted_user_header: str = ""  # e.g. X-Forwarded-User, from CASVAULT_TRUSTED_PROXIES only
    trusted_proxies: str = ""  # CIDRs, comma-separated; "unix" for a Unix socket
    anon_cookie_max_age: int = 400 * 24 * 3600  # seconds; re-issued (sliding) while the guest visits
    trash_retention_days: int = 30
    accel: str = ""  # "nginx" hands /outputs to nginx with X-Accel-Redirect
    outputs_public: bool = False  # /outputs answers anyone, not only the owner and the admin
    watch: bool = False
    comfy_url: str = ""  # the gallery's "Open in ComfyUI" link (e.g. http://127.0.0.1:8188); empty: no link
    dev: bool = False  # development mode: a missing secret is generated, not an error
    fsync: bool = True
    log_format: str = "plain"  # "json": one JSON object a line (request, job and error logs)
    log_level: str = "info"  # the app's loggers; /healthz and /readyz log at debug only
    metrics: bool = False  # GET /metrics (Prometheus); off: 404
    metrics_networks: str = ""  # CIDRs (comma-separated) that may scrape /metrics without the admin token
    metrics_dir: str = ""  # prometheus_client's multiprocess folder; empty: <root>/tmp/metrics
    stage_mode: str = "auto"  # auto: reflink, else copy; copy; hardlink (shares the blob's inode: opt-in)
    max_video_bytes: int = 256 * 1024 * 1024  # MP4/WebM (images: max_upload_bytes)
    comfy_input_dir: str = ""  # ComfyUI's input folder for staging; plain COMFY_INPUT_DIR is read too
    blob_backend: str = ""  # "file" or "s3"; empty: what casvault.json says (default file)
    index_backend: str = ""  # "manifest" or "postgres"; empty: what casvault.json says (default manifest)
    s3_bucket: str = ""
    s3_endpoint: str = ""  # e.g. http://127.0.0.1:9000 for MinIO; empty: AWS
    s3_prefix: str = ""
    pg_dsn: str = ""  # libpq connection string; a password is better kept in PGPASSWORD or ~/.pgpass
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # NOTE: the root is made absolute once, here, where every Config is
        # made: nothing below depends on the working directory (Flask's
        # send_file resolves a relative path against the app's package).
        object.__setattr__(self, "root", Path(os.path.abspath(os.fspath(self.root))))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Read ``CASVAULT_*`` variables; ``overrides`` win over the environment.

        Raises ConfigError on a value that does not parse.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get("CASVAULT_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "root" in values:
            values["root"] = Path(values["root"])
        config = cls(**values)
        config.check()
        return config

    def with_(self, **changes: Any) -> "Config":
        """A copy with some values changed."""
        return replace(self, **changes)

    def check(self) -> None:
        """Raise ConfigError if a value is out of range."""
        if self.link_mode not in LINK_MODES:
            raise ConfigError(f"CASVAULT_LINK_MODE must be one of {', '.join(LINK_MODES)}, not {self.link_mode!r}")
        if self.blob_backend not in BLOB_BACKENDS:
            raise ConfigError(f"CASVAULT_BLOB_BACKEND must be file or s3, not {self.blob_backend!r}")
        if self.index_backend not in INDEX_BACKENDS:
            raise ConfigError(f"CASVAULT_INDEX_BACKEND must be manifest or postgres, not {self.index_backend!r}")
        if self.stage_mode not in ("auto", "copy", "hardlink"):
            raise ConfigError(f"CASVAULT_STAGE_MODE must be auto, copy or hardlink, not {self.stage_mode!r}")
        self._check_observability()
        if not 16 <= self.thumb_size <= 2048:
            raise ConfigError(f"CASVAULT_THUMB_SIZE must be between 16 and 2048, not {self.thumb_size}")
        for name in ("max_upload_bytes", "max_pixels", "max_video_bytes", "decode_budget_pixels"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"CASVAULT_{name.upper()} must be positive")
        for name in ("quota_max_bytes", "quota_max_count", "member_quota_max_bytes", "member_quota_max_count",
                     "trash_retention_days"):
            if getattr(self, name) < 0:
                raise ConfigError(f"CASVAULT_{name.upper()} must not be negative")
        self._check_identity()
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.partition_tz)
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError
            raise ConfigError(f"CASVAULT_PARTITION_TZ {self.partition_tz!r} is not a known time zone") from exc

    def _check_identity(self) -> None:
        """Raise ConfigError for member identity settings that would be weak or silently unused."""
        from .identity import parse_proxies

        if self.member_jwt_secret is not None and len(self.member_jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"CASVAULT_MEMBER_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if self.anon_cookie_max_age < 3600:
            raise ConfigError("CASVAULT_ANON_COOKIE_MAX_AGE must be at least 3600 seconds")
        proxies = parse_proxies(self.trusted_proxies)
        if self.trusted_user_header and not proxies:
            raise ConfigError("CASVAULT_TRUSTED_USER_HEADER needs CASVAULT_TRUSTED_PROXIES (the proxies' addresses)")
        if not self.member_cookie or not self.member_cookie.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"CASVAULT_MEMBER_COOKIE {self.member_cookie!r} is not a valid cookie name")

    def _check_observability(self) -> None:
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"CASVAULT_LOG_FORMAT must be plain or json, not {self.log_format!r}")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"CASVAULT_LOG_LEVEL must be one of {', '.join(LOG_LEVELS).lower()}, not {self.log_level!r}")
        self.metrics_cidrs()

    def metrics_cidrs(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The networks of CASVAULT_METRICS_NETWORKS; raises ConfigError for one that does not parse."""
        nets = []
        for item in self.metrics_networks.replace(",", " ").split():
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"CASVAULT_METRICS_NETWORKS: {item!r} is not a network (e.g. 10.0.0.0/8)") from None
        return nets

    def require_secret(self) -> str:
        """The signing secret; in development a random one kept in ``<root>/meta/dev-secret`` (0600).

        Raises ConfigError when production mode has no CASVAULT_SECRET_KEY or
        one shorter than MIN_SECRET_BYTES.
        """
        if self.secret_key:
            # NOTE: the secret signs cookies and share-link tokens; a short one
            # can be guessed offline from a single cookie. Development may use any.
            if not self.dev and len(self.secret_key.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"CASVAULT_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes "
                    "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
                )
            return self.secret_key
        if not self.dev:
            raise ConfigError("CASVAULT_SECRET_KEY is not set (set it, or CASVAULT_DEV=1 for development)")
        path = Path(self.root) / "meta" / "dev-secret"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(100):  # another worker may be writing it right now
                secret = path.read_text().strip()
                if len(secret) >= 32:
                    return secret
                time.sleep(0.01)
            raise ConfigError(f"{path} is damaged; delete it to make a new development secret") from None
        secret = secrets.token_hex(32)
        # NOTE: every gunicorn worker races here; O_EXCL lets exactly one write it.
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        return secret


def _parse(name: str, typ: Any, raw: str) -> Any:
    typ = str(typ)
    try:
        if "bool" in typ:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ == "int":
            return int(raw)
        return raw
    except ValueError:
        raise ConfigError(f"CASVAULT_{name.upper()}={raw!r} is not a valid {typ}") from None
