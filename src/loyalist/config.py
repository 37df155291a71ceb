"""Settings, read from the environment with the ``LOYALIST_`` prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALIST_", env_file=None, extra="ignore")

    database_url: str = f"sqlite:///{Path.cwd() / 'var' / 'loyalist.db'}"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Largest accepted request body, in bytes.
    max_body_bytes: int = 1_000_000
    # Admission control (kit/admission.py): requests in progress at once per server process;
    # one that finds none free waits up to admission_wait_s, then gets 503 + Retry-After.
    # At most admission_max_waiting wait at once (None: max_in_flight); beyond, 503 at once.
    # Retry-After: refused ÷ served over the last 2 s, clamped to 1..admission_retry_after_max_s.
    # 8 in progress per process (one process per core): beyond that a process on a busy core
    # serves less, not more (docs/benchmarks.md "Session 13"); 64 may wait, so a burst of
    # fifty to one process is served rather than refused.
    max_in_flight: int = 8
    admission_wait_s: float = 2.0
    admission_max_waiting: int | None = 64
    admission_retry_after_max_s: int = 30
    # Master secret: personal data at rest is encrypted (AES-256-GCM) with a key derived
    # from it (HKDF) and looked up by a keyed blind index (HMAC) derived from it too; also
    # webhook signing secrets. Empty: a development key (logged); production must set it.
    # Read directly from the environment by loyalist.kit.crypto.
    secret_key: str = ""
    # JSON keyfile of rotated data keys (loyalist keys rotate writes it; mode 0600).
    keyfile: str = ""
    scheduler_interval_s: float = 60.0
    run_scheduler: bool = True
    log_level: str = "info"
    # Manual points adjustments larger than this (in points, either sign) wait for a second
    # person's approval in the console.
    adjust_approval_threshold: int = 5000
    # Points of manual adjustment (either sign) a console user may apply per programme-local
    # day by role before further adjustments wait for approval too (JSON in the environment).
    adjust_daily_budget: dict[str, int] = {
        "hq_admin": 200_000,
        "regional_manager": 50_000,
        "service_agent": 20_000,
        "store_staff": 5_000,
    }
    # Keep sent messages in a table and show them at /m/dev/inbox (development, demo, tests).
    dev_inbox: bool = False
    # The job worker (``loyalist worker``, or embedded in ``serve`` when run_scheduler is
    # true): how long an idle worker sleeps before looking for due jobs again, how many
    # jobs it runs at once (threads), and how long a claimed job stays leased to it.
    worker_poll_interval_s: float = 1.0
    worker_concurrency: int = 1
    worker_lease_s: float = 300.0
    # Export the event stream to NATS JetStream from the worker when set (nats://host:4222).
    nats_url: str = ""
    nats_stream: str = "LOYALIST"
    nats_prefix: str = "loyalist"
    # Webhooks: deliver to private, loopback, link-local, multicast or reserved addresses
    # (off in production: a registered URL could otherwise reach internal services).
    webhooks_allow_private: bool = False
    # Bounds of one delivery attempt: connecting, and the whole request with its answer.
    webhooks_connect_timeout_s: float = 5.0
    webhooks_timeout_s: float = 10.0
    # The longest Retry-After (seconds) a receiver may ask for; longer waits are cut to it.
    webhooks_max_retry_after_s: int = 86_400
    # --- trust (issue 13: tamper-evident ledger, privacy) ---
    # Where the daily ledger checkpoint (every account's hash-chain head) is written.
    ledger_checkpoint_dir: str = str(Path.cwd() / "var" / "checkpoints")
    # Erase the personal data of members inactive (no order, no points movement, not
    # joined) for this many days, by the daily job privacy.retention; 0: never.
    privacy_retention_days: int = 0
    # How long a member merge can be undone (issue 13 item 2), in days.
    merge_undo_days: int = 7
    # Bulk import from the console (issue 13 item 5): where uploaded files are kept (by
    # checksum) until their import job has read them, and the largest file accepted.
    import_dir: str = str(Path.cwd() / "var" / "imports")
    import_max_bytes: int = 50_000_000
    # A file uploaded and checked but never confirmed is removed by the daily job
    # imports.prune after this many hours (0: kept for ever).
    import_upload_max_age_hours: int = 168


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
