"""The service's settings: where the warehouse and the families are, the session secret, the limits.

Each setting comes from the environment (``SERVICE_*``, ``WAREHOUSE_URL``, ``DEFS_DIR``) or its default;
a test passes a ``ServiceSettings`` directly. The session secret is never printed: its ``repr`` is masked
(``SecretStr``) and a generated one is written once to the data dir, readable by its owner only, so
sessions survive a restart without anyone having to choose a key.
"""

import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from resources.warehouse import data_dir, default_warehouse_url

DEFAULT_DEFS = Path(__file__).resolve().parent.parent / "defs"
SECRET_FILE = "service_secret_key"


class ServiceSettings(BaseModel):
    warehouse_url: str = Field(default_factory=lambda: os.getenv("WAREHOUSE_URL") or default_warehouse_url())
    defs_folder: Path = Field(default_factory=lambda: Path(os.getenv("DEFS_DIR") or DEFAULT_DEFS))
    secret_key: SecretStr = Field(default_factory=lambda: SecretStr(_secret_key()))
    session_max_age_s: int = Field(8 * 3600, gt=0, description="a signed-in session lasts this long")
    # https-only cookies when the service sits behind TLS; off for http://127.0.0.1
    https_only: bool = Field(default_factory=lambda: os.getenv("SERVICE_HTTPS_ONLY", "") in ("1", "true"))
    # sign-in attempts, moving window (``limits`` notation)
    login_limit_per_user: str = "5/minute"
    login_limit_per_client: str = "20/minute"
    # ingest: the largest request body accepted, and the most records in one batch
    max_request_bytes: int = Field(5 * 1024 * 1024, gt=0)
    max_batch_records: int = Field(5000, gt=0)
    queue_page_size: int = Field(50, gt=0)

    @property
    def display_warehouse(self) -> str:
        from resources.warehouse_url import mask_url

        return mask_url(self.warehouse_url)


def _secret_key() -> str:
    key = os.getenv("SERVICE_SECRET_KEY", "")
    if key:
        return key
    path = data_dir() / SECRET_FILE
    if not path.exists():
        # written whole to a private temp file, then linked into place: two processes starting together
        # agree on the first one's key, and nobody reads a half-written one
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()


def load_settings(**overrides) -> ServiceSettings:
    """Settings from the environment, with ``overrides`` (e.g. from the command line) on top."""
    return ServiceSettings(**{k: v for k, v in overrides.items() if v is not None})
