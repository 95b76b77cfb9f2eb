"""Identity tables: organisations, staff, citizens, sessions, partners and their keys, consent.

Design
- *Organisations* are the legal entities the platform deals with (the platform itself, scenario partners,
  merchants, project owners, verifiers, buyers, enterprises). *Staff* are people who log in with a
  username and password on behalf of an organisation and hold *roles* (operator_admin, reviewer, ...).
  Passwords are Argon2id hashes (argon2-cffi defaults, RFC 9106), rehashed on login when the parameters
  change.
- *Citizens* (公众) log in with their mobile phone and a one-time code. The phone number is personal
  data the platform does not need in clear after login, so only a keyed hash is stored:
  HMAC-SHA256(platform secret, normalised phone). Without the secret a leaked table cannot be reversed
  by enumerating the ~10^10 Chinese mobile numbers, which a plain SHA-256 would allow in minutes.
  Erasure (PIPL art. 47) clears the phone hash, nickname and district; the row and its id stay because
  the ledger, activity records and points refer to the citizen by id only.
- *Tokens* are bearer sessions (API `Authorization: Bearer`, web cookie `tanhui_session`). Only the
  SHA-256 of a token is stored: a 256-bit random token needs no key or slow hash to resist guessing, and
  a database leak then yields no usable session.
- *One-time codes* are stored as a keyed hash with an expiry and an attempt counter.

Partners (场景方)
- A partner is an organisation of kind "partner" approved for named scenarios until a date, as the
  Shanghai platform onboards them: application with a business licence, review, time-limited approval
  (e.g. shared bikes until 2027-12-31). When the approval lapses, ingestion stops (403).
- Partners sign requests with HMAC-SHA256. HMAC needs the secret itself on the verifying side, so a hash
  cannot be stored as for passwords: each *key*'s secret is stored encrypted at rest with Fernet
  (AES-128-CBC + HMAC-SHA256), whose key is derived from the platform secret with HKDF-SHA256
  (info "tanhui identity partner-key v1"). A database dump alone then reveals no secret; the platform
  secret (settings, or data_dir/secret.key) is needed too. The secret is shown once, at creation.
- Keys rotate with a grace period: the new key is valid at once and the old ones stay valid until
  `expires_at`, so a partner can deploy the new secret without downtime. A revoked key fails at once.
- Replayed requests are refused by remembering (key_id, nonce) under a unique constraint for longer than
  the accepted clock skew allows a timestamp to stay valid; older nonces are pruned.

Consent (用户授权)
- A *binding* says that a citizen authorised a partner to send the behaviour of one partner account
  (`partner_user_id`) for named scenarios. It is made in an OAuth2 authorisation-code style: the citizen
  approves on our page, the partner exchanges a one-time, short-lived *authorisation code* (stored
  hashed) with a signed request. The binding only becomes active at the exchange: the partner checks
  `state` against its own session, so nobody can bind a partner account that is not theirs by editing
  `partner_user_id` in the URL. Consent is per scenario, can be changed and revoked at any time; a
  revoked binding keeps its row (status "revoked") so earlier records stay explainable.
- Every read of a citizen's personal data by staff or a partner is written to the *access log* that the
  citizen can see (who, when, what, why).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from tanhui.kit.db import Base, BigIntPK, UTCDateTime, utcnow


class Organisation(Base):
    __tablename__ = "identity_organisation"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('platform', 'partner', 'merchant', 'project_owner', 'verifier', 'buyer',"
            " 'enterprise')",
            name="kind_known",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    licence_no: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Staff(Base):
    __tablename__ = "identity_staff"
    # A unique index, not a constraint: SQLite adds an index without rebuilding the table.
    __table_args__ = (Index("uq_identity_staff_idempotency_key", "idempotency_key", unique=True),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(100))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_organisation.id", ondelete="RESTRICT"), index=True
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Brute-force throttle: wrong passwords in a row, and the lock they earned (service.login_staff).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when an operator created the account with an Idempotency-Key: a retried request finds
    # this row instead of failing on the username. The hash covers the request without the password.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))


class StaffRole(Base):
    __tablename__ = "identity_staff_role"

    staff_id: Mapped[int] = mapped_column(
        ForeignKey("identity_staff.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class Citizen(Base):
    __tablename__ = "identity_citizen"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # HMAC-SHA256 hex of the normalised phone; NULL once the citizen erased their data.
    phone_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    nickname: Mapped[str | None] = mapped_column(String(50))
    district: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OneTimeCode(Base):
    __tablename__ = "identity_otp"
    __table_args__ = (Index("ix_identity_otp_phone_created", "phone_hash", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Token(Base):
    __tablename__ = "identity_token"
    __table_args__ = (
        CheckConstraint("kind IN ('citizen', 'staff')", name="kind_known"),
        Index("ix_identity_token_subject", "kind", "subject_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Partner(Base):
    __tablename__ = "identity_partner"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="status_known"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("identity_organisation.id", ondelete="RESTRICT"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    scenarios: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Last day (platform time zone) on which the approval holds; NULL = no end date.
    approved_until: Mapped[date | None] = mapped_column(Date)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PartnerKey(Base):
    __tablename__ = "identity_partner_key"
    __table_args__ = (
        Index("uq_identity_partner_key_idempotency_key", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("identity_partner.id", ondelete="RESTRICT"), index=True
    )
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when a newer key replaced this one: valid until then (grace period), refused after.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A rotation retried under the same key answers with this key (its secret included). Stored
    # as "rotate:<the caller's key of up to 200 characters>", or "application:<id>" for a first key.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))


class Nonce(Base):
    __tablename__ = "identity_nonce"
    __table_args__ = (UniqueConstraint("key_id", "nonce"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PartnerApplication(Base):
    __tablename__ = "identity_partner_application"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status_known"),
        Index("uq_identity_partner_application_idempotency_key", "idempotency_key", unique=True),
        Index("uq_identity_partner_application_decision_key", "decision_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    licence_no: Mapped[str] = mapped_column(String(64))
    scenarios: Mapped[list[str]] = mapped_column(JSON, default=list)
    data_collection: Mapped[str] = mapped_column(Text)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    contact: Mapped[str | None] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_organisation.id", ondelete="RESTRICT")
    )
    applied_by_staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_staff.id", ondelete="RESTRICT")
    )
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    approved_scenarios: Mapped[list[str]] = mapped_column(JSON, default=list)
    valid_until: Mapped[date | None] = mapped_column(Date)
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_by_staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_staff.id", ondelete="RESTRICT")
    )
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_partner.id", ondelete="RESTRICT")
    )
    # A retried application with the same Idempotency-Key finds this row instead of a second one.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # The reviewer's decision, retried under this key, answers as it first did.
    decision_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Binding(Base):
    __tablename__ = "identity_binding"
    __table_args__ = (
        UniqueConstraint("partner_id", "partner_user_id"),
        CheckConstraint("status IN ('active', 'revoked')", name="status_known"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("identity_partner.id", ondelete="RESTRICT"))
    partner_user_id: Mapped[str] = mapped_column(String(128))
    citizen_id: Mapped[int] = mapped_column(
        ForeignKey("identity_citizen.id", ondelete="RESTRICT"), index=True
    )
    scenarios: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthorisationCode(Base):
    __tablename__ = "identity_auth_code"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("identity_partner.id", ondelete="RESTRICT"))
    citizen_id: Mapped[int] = mapped_column(ForeignKey("identity_citizen.id", ondelete="RESTRICT"))
    partner_user_id: Mapped[str] = mapped_column(String(128))
    scenarios: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The binding made when the partner exchanged the code (NULL until then).
    binding_id: Mapped[int | None] = mapped_column(
        ForeignKey("identity_binding.id", ondelete="RESTRICT")
    )
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccessLog(Base):
    __tablename__ = "identity_access_log"
    __table_args__ = (Index("ix_identity_access_log_citizen_at", "citizen_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(ForeignKey("identity_citizen.id", ondelete="RESTRICT"))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int] = mapped_column(BigInteger)
    actor_name: Mapped[str] = mapped_column(String(200))
    what: Mapped[str] = mapped_column(String(200))
    why: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
