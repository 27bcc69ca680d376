"""The tables of the team: accounts, tokens, sessions, roles, the audit log
(migrations 0011-0012), and the labelling queue's reviews (migration 0013)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from trenches.db.schema.columns import Id, metadata

# --- the team: accounts, tokens, roles and the audit log (migration 0011) ---------

# A person or a robot (CI) who signs in to a shared store. Never deleted: disabled, so
# that the audit log keeps naming them.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    # argon2id, in its own PHC string form (parameters and salt included); null for an
    # account that signs in only with tokens or through an identity provider.
    Column("password_hash", Text),
    Column("admin", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger),
    # Who the identity provider says this is (OpenID Connect's iss and sub), once linked.
    Column("oidc_issuer", String(500)),
    Column("oidc_subject", String(255)),
    UniqueConstraint("oidc_issuer", "oidc_subject"),
)

# An API token: its secret is shown once and stored only as SHA-256.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(20), nullable=False),  # the secret's start, shown in lists
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("last_used_at", BigInteger),
    Column("revoked_at", BigInteger),
)

# A browser's signed-in session: its secret lives in an HttpOnly cookie and, like its CSRF
# token, is stored only as SHA-256. Ended by signing out, or by its expiry.
sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("csrf_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Column("remote", String(100)),
)

# A role of a user on a namespace: a dataset or model name, an fnmatch pattern of them,
# or "*" for all. One grant per user and namespace.
role_grants = Table(
    "role_grants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("role", String(20), nullable=False),
    Column("namespace", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("user_id", "namespace"),
)

# Who changed what, when, from where: one row per change, written in the change's own
# transaction. Nothing in trenches updates or deletes a row of it.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False, index=True),
    Column("user_id", ForeignKey("users.id"), index=True),  # null: not a signed-in user
    Column("actor", String(200), nullable=False),  # user name, or local:<os user>
    Column("action", String(100), nullable=False, index=True),  # e.g. problems.add
    Column("target", String(500), nullable=False),  # e.g. problem:small-dense
    Column("detail", Text),  # JSON object
    Column("remote", String(100)),  # the client's address, when over the network
    Column("request_id", String(64)),
)

# --- the labelling queue (migration 0013) -------------------------------------------

# A labeller's decision on an item of the labelling queue, which takes it off the queue:
# kept (the label stands), relabelled, or sent to a problem. The subject is what was
# reviewed: "pattern:ID" (a data-check finding) or "request:ID:ROW" (a production row).
reviews = Table(
    "reviews",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subject", String(200), nullable=False, index=True),
    Column("decision", String(20), nullable=False),  # kept | relabelled | sent
    Column("label", Text),  # JSON: the label kept or given
    Column("reason", Text),
    Column("pattern_id", BigInteger),  # the pattern the item is (or became)
    Column("problem", String(200)),  # the problem it was sent to
    Column("reviewed_by", String(200)),
    Column("reviewed_at", BigInteger, nullable=False),
)
