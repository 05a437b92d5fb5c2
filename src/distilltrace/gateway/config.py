"""One configuration object for the gateway (library and CLI share it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distilltrace.errors import InputError
from distilltrace.serve.guard import DEFAULT_MAX_BODY_BYTES

#: Request headers a fronting proxy may set with the client's TLS fingerprint (first wins).
DEFAULT_FINGERPRINT_HEADERS = ("x-ja4", "x-ja4-fingerprint", "x-ja3", "x-tls-fingerprint")


@dataclass
class GatewayConfig:
    """Everything the gateway needs.

    ``upstream``: a local model spec (folder, ``.gguf``, bundled name) or an already
    loaded local model object, or ``openai:BASE_URL[;key_env=VAR][;timeout=S]`` (proxy
    only; the upstream's API key is read from the environment variable ``key_env``).
    ``log_dir``: the evidence log folder (segments/, parquet/, quarantine/).
    ``db_url``: a SQLAlchemy URL of the account store (default: SQLite in ``log_dir``).
    ``admin_token_file``: a file holding the admin API token (no file: no admin API).
    ``watermark_key_file``: a watermark key (local upstream only): outputs are marked.
    ``trusted_proxies``: peers whose X-Forwarded-For and TLS fingerprint headers are
    believed (the direct peer address is logged otherwise).
    ``batching``: how a local upstream batches concurrent requests (a serve
    ``BatchConfig``; None: serve's default, continuous batching of up to 8 rows).
    ``max_segment_bytes`` / ``max_segment_age_s``: a writer starts a new segment past
    either; ``roll_interval_s``: how often the gateway rolls finished segments to Parquet
    (None: only at start and with ``distilltrace gateway roll``).
    ``upstream_timeout_s``: the HTTP timeout to a remote upstream (a local model is called
    in-process; its generations are bounded by ``max_tokens``).
    """

    upstream: Any
    log_dir: Path
    db_url: str | None = None
    admin_token_file: Path | None = None
    watermark_key_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    allowed_hosts: list[str] | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    upstream_timeout_s: float = 600.0
    batching: Any = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    fingerprint_headers: tuple[str, ...] = DEFAULT_FINGERPRINT_HEADERS
    max_segment_bytes: int = 64 * 2**20
    max_segment_age_s: float | None = 300.0
    roll_interval_s: float | None = 60.0
    fsync: bool = True
    roll_on_start: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.log_dir = Path(self.log_dir).expanduser()
        if self.upstream is None or (isinstance(self.upstream, str) and not self.upstream.strip()):
            raise InputError("gateway: an upstream model spec is required")
        if int(self.max_body_bytes) < 1:
            raise InputError(f"gateway: max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if not 0 < int(self.port) < 65536:
            raise InputError(f"gateway: port must be in 1..65535, got {self.port}")
        if int(self.max_segment_bytes) < 4096:
            raise InputError("gateway: max_segment_bytes must be >= 4096")
        if self.upstream_timeout_s <= 0:
            raise InputError("gateway: upstream_timeout_s must be > 0")

    @property
    def database_url(self) -> str:
        """The account store's SQLAlchemy URL."""
        return self.db_url or f"sqlite:///{self.log_dir / 'accounts.sqlite3'}"

    @property
    def is_remote(self) -> bool:
        """True for an ``openai:`` upstream (the gateway only proxies)."""
        return isinstance(self.upstream, str) and self.upstream.startswith("openai:")

    def admin_token(self) -> str | None:
        """The admin API token (None: the admin API is off); one-line error if unreadable."""
        if self.admin_token_file is None:
            return None
        p = Path(self.admin_token_file).expanduser()
        if not p.is_file():
            raise InputError(f"gateway: admin token file not found: {p}")
        tok = p.read_text(encoding="utf-8").strip()
        if len(tok) < 16:
            raise InputError(f"gateway: the admin token in {p} is shorter than 16 characters")
        return tok
