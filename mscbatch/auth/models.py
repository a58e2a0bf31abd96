"""Users, their roles, their server-side sessions and their API tokens."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, UniqueConstraint, false, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mscbatch.audit.trail import Audited
from mscbatch.database import Base, UTCDateTime, utcnow

ROLES = ("technician", "qa", "clinician", "nurse", "admin")
ROLE_LABELS = {"technician": "Lab technician", "qa": "QA / Qualified Person", "clinician": "Clinician",
               "nurse": "Ward nurse", "admin": "Administrator"}
# System administration is kept apart from the roles that record and sign GMP records (EU GMP Annex 11 §12,
# 21 CFR 11.10(d),(g)): an account holding it holds no other role, so no chain of administrator accounts can
# hand an administrator the QA signature.
ADMIN_ROLE = "admin"


def roles_beside_admin(roles: Iterable[str]) -> list[str]:
    """The roles held together with the administrator role, in ROLES order (empty: the rule is kept)."""
    held = set(roles)
    return [role for role in ROLES if role != ADMIN_ROLE and role in held] if ADMIN_ROLE in held else []


class User(Audited, Base):
    __tablename__ = "user_account"
    __audit_exclude__ = frozenset({"password_hash"})
    __audit_requires_reason__ = False  # account administration, not recorded GMP data

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    full_name: Mapped[str] = mapped_column(String(120))  # the printed name on signatures
    password_hash: Mapped[str] = mapped_column(String(255))
    is_enabled: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_out_at: Mapped[datetime | None] = mapped_column(default=None)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # set when an administrator chose the password (a new account): until its owner changes it, every page leads
    # to the password change, the API answers 403 and no signature is accepted (the admin knows the password)
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())

    roles: Mapped[list[UserRole]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                 lazy="selectin", order_by="UserRole.role")

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r.role for r in self.roles)

    def has_role(self, *roles: str) -> bool:
        return bool(self.role_names & set(roles))

    @property
    def roles_beside_admin(self) -> list[str]:
        """Roles held with admin, left from before the rule: such an account is not active (no sign-in, no
        session, no API token) until another administrator removes one side on the Users page."""
        return roles_beside_admin(self.role_names)

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.is_enabled and self.locked_out_at is None and not self.roles_beside_admin

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


# Two accounts printing the same name on their signatures could not be told apart on a record or a certificate:
# printed names are unique whatever their case (lower() in SQL, as the service's check compares them).
Index("uq_user_account_full_name_lower", func.lower(User.full_name), unique=True)


class UserRole(Audited, Base):
    __tablename__ = "user_role"
    __audit_requires_reason__ = False
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    user: Mapped[User] = relationship(back_populates="roles")


class AuthSession(Base):
    """A login, checked on every request: ending it here ends it everywhere (a replayed cookie is refused)."""

    __tablename__ = "auth_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the random cookie token
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[str | None] = mapped_column(String(40))
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Audited, Base):
    """A personal token for scanners and integrations; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    __audit_requires_reason__ = False
    __audit_exclude__ = frozenset({"token_hash"})
    # When the token last signed someone in (services.user_for_api_token stamps it at most every few minutes), for
    # its owner to revoke stale ones. Bookkeeping, not a change of the record: a column of the table left out of
    # the mapping, so the audit trail never holds it (no event per stamp, none in the insert snapshot) and `audit
    # reconcile`, which compares the mapped columns, does not report every used token. `__audit_exclude__` would
    # not do: an excluded value is still in the trail as a digest, and reconciled. Read and written with Core
    # (API_TOKEN_LAST_USED), never through the ORM, so no flush can carry it into the trail.
    __table_args__ = (Column("last_used_at", UTCDateTime(), nullable=True),)
    __mapper_args__ = {"exclude_properties": ["last_used_at"]}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16))  # shown to the user to tell tokens apart
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime]  # created_at + services.API_TOKEN_LIFETIME: an expired token authenticates nobody
    user: Mapped[User] = relationship(lazy="joined")


API_TOKEN_LAST_USED = ApiToken.__table__.c.last_used_at  # see ApiToken: unmapped, not audited


class PasswordHistory(Base):
    """The Argon2 hashes of an account's earlier passwords (21 CFR 11.300(b)): a new password may not be one of the
    account's last passwords (services.PASSWORD_REUSE_DEPTH, the current one included), so A -> B -> A is refused.
    Only the newest few are kept (services prunes the rest). Not audited: the change itself is (the account's
    password_hash, as the trail's keyed digest); a hash here is never shown."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # when this password stopped being the account's (it was replaced)
    replaced_at: Mapped[datetime] = mapped_column(default=utcnow)


class SigninFailure(Base):
    """A failed sign-in (unknown name, wrong password, shut account) from one client address, kept for the sign-in
    throttle's window (services.SIGNIN_THROTTLE_WINDOW) and then pruned. In the database, not in a worker's memory,
    so that every gunicorn worker counts the same failures. Not audited: the failure itself is (login_failed...);
    this is the throttle's bookkeeping."""

    __tablename__ = "signin_failure"
    __table_args__ = (Index("ix_signin_failure_address_failed_at", "address", "failed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
