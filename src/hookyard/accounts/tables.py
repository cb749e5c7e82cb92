"""Tenants, the people who use hookyard, and their API keys.

Migration 0010 creates exactly these tables (`tests/test_migrations.py` compares them).
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, UniqueConstraint

from hookyard.db.schema import Id, UTCDateTime, metadata

# A customer organisation. Its id is the `tenant` every domain row and event carries; `ban`
# links it to its CRM customer (the seed's "BAN picker" finds a tenant by either).
tenants = Table(
    "tenants",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("ban", String(11), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("ban"),
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),  # normalised (lower-case)
    Column("name", String(200), nullable=True),
    Column("role", String(20), nullable=False),  # superadmin, admin, member, viewer
    # None only for superadmins, who act for any tenant (X-Customer-ID picks one).
    Column("tenant", String(100), ForeignKey("tenants.id", name="fk_users_tenant"), nullable=True),
    Column("password_hash", String(200), nullable=True),  # argon2id; None: API keys only
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled_at", UTCDateTime(), nullable=True),
    UniqueConstraint("email"),
    Index(None, "tenant"),
)

# `hk_<prefix>_<secret>`: the prefix (public, shown in lists) finds the row, the SHA-256 of
# the whole key is compared in constant time. The key itself is shown once, never stored.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", name="fk_api_keys_user_id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    UniqueConstraint("prefix"),
    Index(None, "user_id"),
)
