"""Who is calling: tenants, users (argon2id passwords), API keys and short-lived sessions
(HS256 JWTs). All SQL on tenants, users and api_keys is here; what an HTTP request makes of
it (401, 403, the tenant it acts for) is `api/auth.py`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, case, delete, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hookyard.accounts.tables import api_keys, tenants, users
from hookyard.providers.signing import constant_time_equal

KEY_PREFIX = "hk_"
_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a wrong e-mail costs what a wrong password
# does (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    SUPERADMIN = "superadmin"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.SUPERADMIN: 3}


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, resolved from an admin token, an API key or a session."""

    subject: str  # "admin-token", "user:12"
    role: Role
    tenant: str | None  # None: a superadmin (acts for any tenant)
    user_id: int | None = None
    via: str = "session"  # admin_token, api_key, session

    def at_least(self, role: Role | str) -> bool:
        return self.role.rank >= Role(role).rank

    @property
    def sees_personal_data(self) -> bool:
        """Viewers see e-mail, phone and document numbers masked."""
        return self.role is not Role.VIEWER


class AuthError(Exception):
    """Credentials that do not identify anyone (answered 401)."""


def _now() -> datetime:
    return datetime.now(UTC)


# -- tenants --------------------------------------------------------------------------------


def create_tenant(engine: Engine, tenant_id: str, name: str, ban: str | None = None) -> None:
    with engine.begin() as tx:
        tx.execute(insert(tenants).values(id=tenant_id, name=name, ban=ban, created_at=_now()))


def find_tenant(conn: Connection, key: str) -> str | None:
    """A tenant by id or by BAN; an id wins over another tenant's BAN (it cannot be one
    through the API: ids are lower case, BANs upper case). `domain/crm/tenancy.py` also
    finds a tenant by any of its customers' BANs."""
    found = conn.execute(
        select(tenants.c.id)
        .where((tenants.c.id == key) | (tenants.c.ban == key))
        .order_by(case((tenants.c.id == key, 0), else_=1))
        .limit(1)
    ).scalar()
    return None if found is None else str(found)


def tenant_of_ban(conn: Connection, ban: str) -> str | None:
    found = conn.execute(select(tenants.c.id).where(tenants.c.ban == ban)).scalar()
    return None if found is None else str(found)


def ban_taken(conn: Connection, ban: str) -> bool:
    return conn.execute(select(tenants.c.id).where(tenants.c.ban == ban)).first() is not None


def insert_tenant(
    tx: Connection, tenant_id: str, name: str, ban: str | None, at: datetime | None = None
) -> bool:
    """Add a tenant in the caller's transaction unless its id or BAN is taken: whether it
    was added. A concurrent insert of the same id waits for the other transaction, and
    then adds nothing (no error that would end the transaction on PostgreSQL)."""
    values = {"id": tenant_id, "name": name[:255], "ban": ban, "created_at": at or _now()}
    dialect = postgresql if tx.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(tenants).values(values).on_conflict_do_nothing()
    # RETURNING, not rowcount: PostgreSQL's driver may report -1 for an insert.
    return tx.execute(statement.returning(tenants.c.id)).first() is not None


def claim_ban(tx: Connection, tenant_id: str, ban: str) -> None:
    """The tenant's BAN becomes `ban` if it has none yet and no other tenant holds it."""
    other = tenants.alias("other")
    tx.execute(
        update(tenants)
        .where(
            tenants.c.id == tenant_id,
            tenants.c.ban.is_(None),
            ~exists(select(other.c.id).where(other.c.ban == ban)),
        )
        .values(ban=ban)
    )


def release_tenant(
    tx: Connection, tenant_id: str, ban: str, created_at: datetime, still_used: bool
) -> None:
    """Undo what creating a customer (with `ban`, at `created_at`) did to its tenant, the
    customer being gone: the tenant forgets that BAN; a tenant created with the customer
    (at the same instant) goes too, unless a user or, `still_used`, another row needs it."""
    tx.execute(
        update(tenants).where(tenants.c.id == tenant_id, tenants.c.ban == ban).values(ban=None)
    )
    if not still_used:
        user = select(users.c.id).where(users.c.tenant == tenant_id)
        tx.execute(
            delete(tenants).where(
                tenants.c.id == tenant_id, tenants.c.created_at == created_at, ~exists(user)
            )
        )


def list_tenants(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tenants).order_by(tenants.c.id)).mappings()]


# -- users ----------------------------------------------------------------------------------


def create_user(
    engine: Engine,
    email: str,
    role: Role,
    tenant: str | None,
    password: str | None = None,
    name: str | None = None,
) -> int:
    if role is Role.SUPERADMIN and tenant is not None:
        raise ValueError("a superadmin belongs to no tenant")
    if role is not Role.SUPERADMIN and tenant is None:
        raise ValueError(f"a {role.value} belongs to a tenant")
    with engine.begin() as tx:
        user_id = tx.execute(
            insert(users)
            .values(
                email=email.strip().lower(),
                name=name,
                role=role.value,
                tenant=tenant,
                password_hash=_hasher.hash(password) if password else None,
                created_at=_now(),
            )
            .returning(users.c.id)
        ).scalar_one()
    return int(user_id)


def list_users(engine: Engine, tenant: str | None) -> list[dict[str, Any]]:
    query = select(users.c.id, users.c.email, users.c.name, users.c.role, users.c.tenant,
                   users.c.created_at, users.c.disabled_at).order_by(users.c.id)  # fmt: skip
    if tenant is not None:
        query = query.where(users.c.tenant == tenant)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def find_user(conn: Connection, user_id: int, tenant: str | None) -> dict[str, Any] | None:
    """A user of `tenant` (of any tenant, superadmins included, when None); None otherwise."""
    query = select(users.c.id, users.c.email, users.c.name, users.c.role, users.c.tenant,
                   users.c.disabled_at).where(users.c.id == user_id)  # fmt: skip
    if tenant is not None:
        query = query.where(users.c.tenant == tenant)
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def _principal(row: Any, via: str) -> Principal:
    return Principal(f"user:{row['id']}", Role(row["role"]), row["tenant"], int(row["id"]), via)


def login(engine: Engine, email: str, password: str) -> Principal:
    with engine.connect() as conn:
        row = (
            conn.execute(select(users).where(users.c.email == email.strip().lower()))
            .mappings()
            .first()
        )
    stored = row["password_hash"] if row is not None else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise AuthError("wrong e-mail or password") from None
    if row is None or stored is None or row["disabled_at"] is not None:
        raise AuthError("wrong e-mail or password")
    return _principal(row, "session")


def user_principal(engine: Engine, user_id: int, via: str) -> Principal:
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    if row is None or row["disabled_at"] is not None:
        raise AuthError("the user no longer exists or is disabled")
    return _principal(row, via)


# -- API keys -------------------------------------------------------------------------------


def _key_hash(key: str) -> str:
    # A random 32-byte secret needs no slow hash: SHA-256 cannot be brute-forced back.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine: Engine, user_id: int, name: str) -> tuple[int, str]:
    """A new key for the user: its id, and the key itself (shown once, never stored)."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with engine.begin() as tx:
        key_id = tx.execute(
            insert(api_keys)
            .values(
                prefix=prefix, key_hash=_key_hash(key), user_id=user_id, name=name,
                created_at=_now(),
            )
            .returning(api_keys.c.id)
        ).scalar_one()  # fmt: skip
    return int(key_id), key


def list_api_keys(engine: Engine, user_id: int | None, tenant: str | None) -> list[dict[str, Any]]:
    query = (
        select(api_keys.c.id, api_keys.c.prefix, api_keys.c.name, api_keys.c.user_id,
               api_keys.c.created_at, api_keys.c.last_used_at, api_keys.c.revoked_at)
        .select_from(api_keys.join(users, users.c.id == api_keys.c.user_id))
        .order_by(api_keys.c.id)
    )  # fmt: skip
    if user_id is not None:
        query = query.where(api_keys.c.user_id == user_id)
    if tenant is not None:
        query = query.where(users.c.tenant == tenant)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def revoke_api_key(engine: Engine, key_id: int, user_id: int | None, tenant: str | None) -> bool:
    """Revoke a key (of `user_id`, or of any user of `tenant`; None: no such limit)."""
    owner = select(users.c.id)
    if tenant is not None:
        owner = owner.where(users.c.tenant == tenant)
    if user_id is not None:
        owner = owner.where(users.c.id == user_id)
    with engine.begin() as tx:
        changed = tx.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                api_keys.c.revoked_at.is_(None),
                api_keys.c.user_id.in_(owner),
            )
            .values(revoked_at=_now())
        ).rowcount
    return bool(changed)


def authenticate_key(engine: Engine, key: str) -> Principal:
    prefix = key[len(KEY_PREFIX) :].split("_", 1)[0] if key.startswith(KEY_PREFIX) else ""
    with engine.connect() as conn:
        row = conn.execute(
            select(api_keys.c.id, api_keys.c.key_hash, api_keys.c.revoked_at, api_keys.c.user_id,
                   api_keys.c.last_used_at).where(api_keys.c.prefix == prefix)
        ).mappings().first()  # fmt: skip
    if row is None or not constant_time_equal(row["key_hash"], _key_hash(key)):
        raise AuthError("unknown API key")
    if row["revoked_at"] is not None:
        raise AuthError("this API key was revoked")
    now = _now()
    last = row["last_used_at"]
    if last is None or now - last > timedelta(minutes=1):  # not a write per request
        with engine.begin() as tx:
            tx.execute(update(api_keys).where(api_keys.c.id == row["id"]).values(last_used_at=now))
    return user_principal(engine, int(row["user_id"]), "api_key")


# -- sessions -------------------------------------------------------------------------------


ADMIN_SUBJECT = "admin-token"


def _admin_mark(secret: str, admin_token: str) -> str:
    # Ties an operator's session to the admin token it was opened with: rotating
    # HOOKYARD_ADMIN_TOKEN ends those sessions. A MAC, so the token itself never leaves.
    return hmac.new(secret.encode(), b"admin:" + admin_token.encode(), "sha256").hexdigest()


def issue_session(
    principal: Principal, secret: str, minutes: float, admin_token: str | None = None
) -> tuple[str, int]:
    """A signed session token for the dashboard: (token, seconds it lasts). The operator
    (the admin token's principal) gets one too, given the admin token."""
    now = _now()
    seconds = int(minutes * 60)
    claims: dict[str, Any] = {
        "sub": principal.subject,
        "iat": now,
        "exp": now + timedelta(seconds=seconds),
    }
    if principal.subject == ADMIN_SUBJECT:
        if not admin_token:
            raise ValueError("an operator session needs the admin token")
        claims["adm"] = _admin_mark(secret, admin_token)
    return jwt.encode(claims, secret, algorithm="HS256"), seconds


def read_session(
    engine: Engine, token: str, secret: str, admin_token: str | None = None
) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the session expired; log in again") from None
    except jwt.InvalidTokenError:
        raise AuthError("not a valid session token") from None
    subject = str(claims["sub"])
    if subject == ADMIN_SUBJECT:
        mark = claims.get("adm")
        if not admin_token or not isinstance(mark, str):
            raise AuthError("not a valid session token")
        if not constant_time_equal(mark, _admin_mark(secret, admin_token)):
            raise AuthError("the admin token changed; log in again")
        return operator()
    if not subject.startswith("user:") or not subject[5:].isdigit():
        raise AuthError("not a valid session token")
    # The user's current role and tenant, not the ones at login: a change takes effect now.
    return user_principal(engine, int(subject[5:]), "session")


def operator() -> Principal:
    """The holder of HOOKYARD_ADMIN_TOKEN: a superadmin that is no user."""
    return Principal(ADMIN_SUBJECT, Role.SUPERADMIN, None, None, "admin_token")


class KeyKind(StrEnum):
    ADMIN_TOKEN = "admin_token"  # noqa: S105 - a kind of credential, not one
    API_KEY = "api_key"
    SESSION = "session"


def kind_of(token: str) -> KeyKind:
    if token.startswith(KEY_PREFIX):
        return KeyKind.API_KEY
    if token.count(".") == 2:
        return KeyKind.SESSION
    return KeyKind.ADMIN_TOKEN
