"""Settings the database must keep once data depends on them: today, the platform time zone.

Daily caps, daily totals and the span bounds that clear overlapping trips are kept per day of the
platform time zone. Started with another zone, the platform would count today's trips against the
wrong day's totals, silently. So the zone a database was first served with is stored, and a start
with another one is refused.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from tanhui.kit.db import Base, UTCDateTime, utcnow
from tanhui.kit.dialect import insert_ignore
from tanhui.kit.errors import Conflict

TIMEZONE = "timezone"


class PlatformSetting(Base):
    __tablename__ = "kit_platform_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TimezoneChanged(Conflict):
    code = "timezone_changed"


def check_timezone(session: Session, timezone: str) -> None:
    """Store the zone on a database's first start; refuse a start with another zone after that."""
    read = select(PlatformSetting.value).where(PlatformSetting.key == TIMEZONE)
    stored = session.scalar(read)
    if stored is None:
        # Two API processes may start at once on a new database: the first one's zone stays.
        session.execute(
            insert_ignore(session, PlatformSetting.__table__, ["key"]),  # type: ignore[arg-type]
            {"key": TIMEZONE, "value": timezone, "set_at": utcnow()},
        )
        stored = session.scalar(read)
    if stored != timezone:
        raise TimezoneChanged(
            f"this database keeps its daily totals in the time zone {stored}, but TANHUI_TIMEZONE"
            f" is {timezone}: set TANHUI_TIMEZONE={stored} (the zone cannot change once records"
            " are kept)",
            field="timezone",
        )
