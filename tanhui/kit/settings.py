"""Platform settings: environment variables (TANHUI_*) over an optional TOML file over defaults."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> Path:
    return Path(os.environ.get("TANHUI_CONFIG", "tanhui.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TANHUI_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Where the SQLite file, keys and uploads live.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means a SQLite file in data_dir."
    )
    timezone: str = Field(
        "Asia/Shanghai", description="Platform time zone for daily caps and reports."
    )
    region: str = Field(
        "shenzhen", description="Region whose methodology variants apply by default."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key for keyed hashes and sessions; generated into data_dir when unset.",
    )
    log_level: str = "INFO"
    log_json: bool = Field(False, description="Log one JSON object per line (production).")
    base_url: str = "http://127.0.0.1:8000"
    max_request_mb: int = Field(
        16, ge=1, description="Largest request body accepted (MB); larger ones get 413."
    )
    trust_key_path: Path | None = Field(
        None, description="Ed25519 tree-head key; default data_dir/trust-ed25519.pem."
    )
    trust_sth_interval_s: float = Field(
        60.0, description="Seconds between scheduled signed tree heads."
    )
    argon2_time_cost: int = Field(3, ge=1, description="Argon2id passes for staff passwords.")
    argon2_memory_kib: int = Field(
        65536,
        ge=8,
        description="Argon2id memory per staff-password hash (KiB; RFC 9106 low-memory).",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises on an unknown zone: fail at start, not at the first daily cap
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _config_file().is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_config_file()))
        return tuple(sources)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tanhui.db'}"

    def secret(self) -> bytes:
        """The platform secret; created once per installation when not configured."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


@lru_cache
def get_settings() -> Settings:
    return Settings()
