"""The team around a shared store: accounts, API tokens, roles per namespace, and the
audit log, on SQLite and PostgreSQL, through the library and the command line."""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import pty
import select
import statistics
import sys
import termios
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import event, text, update

import trenches
from trenches.db import schema as t
from trenches.db.audit import Actor, acting_as, change
from trenches.db.engine import write
from trenches.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from trenches.team.roles import ACTIONS, ROLES, includes, matches, promotion_action, role_at

from conftest import noisy_corner, run_cli

PASSWORD = "correct horse battery staple"


def _rows(store: trenches.Store, table: str) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {table}"))]


def _actions(store: trenches.Store) -> list[str]:
    return [e.action for e in store.audit.list(limit=1000)]


# --- accounts ------------------------------------------------------------------------


def test_a_password_is_stored_as_an_argon2_hash_not_as_given(store: trenches.Store) -> None:
    user = store.accounts.create("ada", password=PASSWORD)
    assert user.has_password and not user.admin and not user.disabled
    (row,) = _rows(store, "users")
    stored = str(row["password_hash"])
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert PasswordHasher().verify(stored, PASSWORD)
    assert store.accounts.verify("ada", PASSWORD) == user


def test_a_wrong_password_an_unknown_or_disabled_user_are_refused_alike(
    store: trenches.Store,
) -> None:
    store.accounts.create("ada", password=PASSWORD)
    store.accounts.create("bob", password=PASSWORD)
    store.accounts.create("robot")  # tokens only
    store.accounts.disable("bob")
    messages = set()
    for name, password in [
        ("ada", PASSWORD + "!"),
        ("nobody", PASSWORD),
        ("robot", PASSWORD),
        ("bob", PASSWORD),  # the right password of a disabled account
    ]:
        with pytest.raises(NotAuthenticated) as refused:
            store.accounts.verify(name, password)
        messages.add(str(refused.value))
    assert len(messages) == 1


def test_an_unknown_user_takes_as_long_to_refuse_as_a_wrong_password(
    sqlite_store: trenches.Store,
) -> None:
    store = sqlite_store
    store.accounts.create("ada", password=PASSWORD)

    def took(name: str) -> float:
        start = time.perf_counter()
        with pytest.raises(NotAuthenticated):
            store.accounts.verify(name, "not the password at all")
        return time.perf_counter() - start

    known = statistics.median(took("ada") for _ in range(3))
    unknown = statistics.median(took("nobody") for _ in range(3))
    # One argon2 hash each (tens of milliseconds); a bare lookup would take well under one.
    assert unknown > known / 2


def test_a_short_password_is_refused_saying_how_long_it_must_be(store: trenches.Store) -> None:
    with pytest.raises(InvalidInput, match="at least 12 characters") as refused:
        store.accounts.create("ada", password="hunter2")
    assert "hunter2" not in str(refused.value)
    assert store.accounts.list() == []
    store.accounts.create("ada", password=PASSWORD)
    with pytest.raises(InvalidInput, match="at least 12"):
        store.accounts.set_password("ada", "short")
    assert store.accounts.verify("ada", PASSWORD).name == "ada"


def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(store: trenches.Store) -> None:
    store.accounts.create("ada", password=PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with store.engine.begin() as conn:
        conn.execute(update(t.users).values(password_hash=weak))
    store.accounts.verify("ada", PASSWORD)
    (row,) = _rows(store, "users")
    assert row["password_hash"] != weak
    assert not PasswordHasher().check_needs_rehash(str(row["password_hash"]))
    assert store.accounts.verify("ada", PASSWORD).name == "ada"


def test_names_are_unique_and_cannot_pose_as_the_local_user(store: trenches.Store) -> None:
    store.accounts.create("ada")
    with pytest.raises(Conflict, match="exists already"):
        store.accounts.create("ada")
    for bad in ("local:ada", "", "a b", "x" * 101):
        with pytest.raises(InvalidInput, match="user name"):
            store.accounts.create(bad)
    with pytest.raises(NotFound, match="no user 'eve'"):
        store.accounts.get("eve")


def test_a_disabled_account_stays_listed_and_can_be_enabled_again(store: trenches.Store) -> None:
    store.accounts.create("ada", password=PASSWORD)
    assert store.accounts.disable("ada").disabled
    with pytest.raises(Conflict, match="disabled already"):
        store.accounts.disable("ada")
    assert [u.name for u in store.accounts.list()] == ["ada"]
    assert store.accounts.list(disabled=False) == []
    assert not store.accounts.enable("ada").disabled
    assert store.accounts.verify("ada", PASSWORD).name == "ada"


# --- tokens --------------------------------------------------------------------------


def test_an_identity_is_linked_to_one_account_only(store: trenches.Store) -> None:
    store.accounts.create("ada")
    store.accounts.create("bob")
    linked = store.accounts.link("ada", issuer="https://id.example.com", subject="s-1")
    assert (linked.oidc_issuer, linked.oidc_subject) == ("https://id.example.com", "s-1")
    with pytest.raises(Conflict, match="'ada' is linked to subject 's-1'"):
        store.accounts.link("bob", issuer="https://id.example.com", subject="s-1")
    assert store.accounts.find_identity("https://id.example.com", "s-1") == linked
    assert store.accounts.find_identity("https://other.example.com", "s-1") is None
    assert [e.target for e in store.audit.list(action="users.link")] == ["user:ada"]


def test_a_new_identity_is_named_from_its_claims_or_refused(store: trenches.Store) -> None:
    from trenches.team.accounts import Identity

    issuer = "https://id.example.com"
    by_email = store.accounts.for_identity(Identity(issuer, "s-2", "no spaces!", "al@x.org"))
    assert (by_email.name, by_email.admin, by_email.has_password) == ("al@x.org", False, False)
    with pytest.raises(NotAuthenticated, match="no usable user name"):
        store.accounts.for_identity(Identity(issuer, "s-3", None, None))
    with pytest.raises(NotAuthenticated, match="trenches users link al@x"):
        store.accounts.for_identity(Identity("https://other.example.com", "s-2", "al@x.org"))


def test_a_token_secret_is_shown_once_and_stored_only_as_its_sha256(
    store: trenches.Store,
) -> None:
    store.accounts.create("ci")
    made = store.tokens.create("ci", "github", expires_in=timedelta(days=30))
    assert made.secret.startswith("trn_") and len(made.secret) > 40
    assert made.secret not in repr(made)
    (row,) = _rows(store, "api_tokens")
    assert row["token_hash"] == hashlib.sha256(made.secret.encode()).hexdigest()
    assert all(made.secret not in str(value) for value in row.values())
    listed = store.tokens.list("ci")
    assert listed == [made.token] and made.secret not in str(trenches.to_json(listed))
    assert made.secret.startswith(made.token.prefix) and made.token.state() == "active"
    assert store.tokens.verify(made.secret).name == "ci"


def test_a_token_lets_its_user_in_until_it_expires(store: trenches.Store) -> None:
    store.accounts.create("ci")
    made = store.tokens.create("ci", "short-lived", expires_in=timedelta(seconds=1))
    forever = store.tokens.create("ci", "forever", expires_in=None)
    assert store.tokens.verify(made.secret).name == "ci"
    time.sleep(1.1)
    with pytest.raises(NotAuthenticated):
        store.tokens.verify(made.secret)
    assert store.tokens.get(made.token.id).state() == "expired"
    assert forever.token.expires_at is None and store.tokens.verify(forever.secret).name == "ci"
    with pytest.raises(InvalidInput, match="positive"):
        store.tokens.create("ci", "backwards", expires_in=timedelta(seconds=-1))


def test_a_revoked_unknown_or_disabled_users_token_is_refused_alike(
    store: trenches.Store,
) -> None:
    store.accounts.create("ci")
    store.accounts.create("bot")
    revoked = store.tokens.create("ci", "old", expires_in=timedelta(days=1))
    kept = store.tokens.create("ci", "new", expires_in=timedelta(days=1))
    of_disabled = store.tokens.create("bot", "job", expires_in=timedelta(days=1))
    assert store.tokens.revoke(revoked.token.id).state() == "revoked"
    with pytest.raises(Conflict, match="revoked already"):
        store.tokens.revoke(revoked.token.id)
    store.accounts.disable("bot")
    messages = set()
    for secret in (revoked.secret, of_disabled.secret, "trn_" + "x" * 43, "", "x" * 10_000):
        with pytest.raises(NotAuthenticated) as refused:
            store.tokens.verify(secret)
        messages.add(str(refused.value))
    assert len(messages) == 1
    assert store.tokens.verify(kept.secret).name == "ci"
    with pytest.raises(Conflict, match="disabled"):
        store.tokens.create("bot", "another", expires_in=None)
    with pytest.raises(NotFound):
        store.tokens.create("nobody", "x", expires_in=None)


@pytest.fixture
def statements(store: trenches.Store) -> Iterator[list[str]]:
    """The SQL statements the store's engine runs while the test goes on."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", note)
    yield seen
    event.remove(store.engine, "before_cursor_execute", note)


def test_a_tokens_last_use_is_written_at_most_once_a_minute(
    store: trenches.Store, statements: list[str]
) -> None:
    store.accounts.create("ci")
    made = store.tokens.create("ci", "github", expires_in=timedelta(days=1))
    assert made.token.last_used_at is None
    store.tokens.verify(made.secret)
    first = store.tokens.get(made.token.id).last_used_at
    assert first is not None
    statements.clear()
    store.tokens.verify(made.secret)
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert store.tokens.get(made.token.id).last_used_at == first
    with store.engine.begin() as conn:  # a minute and a bit later
        conn.execute(update(t.api_tokens).values(last_used_at=t.api_tokens.c.last_used_at - 61e6))
    store.tokens.verify(made.secret)
    later = store.tokens.get(made.token.id).last_used_at
    assert later is not None and later > first
    assert "tokens.verify" not in _actions(store)  # using a token is not a change


# --- roles ---------------------------------------------------------------------------

_NAMES = st.text(alphabet="abcdefgh-_.0123456789", min_size=1, max_size=12)


def test_each_role_includes_the_ones_before_it() -> None:
    assert ROLES == ("viewer", "labeller", "tester", "maintainer", "approver", "admin")
    for i, role in enumerate(ROLES):
        for j, other in enumerate(ROLES):
            assert includes(role, other) == (i >= j)


@given(role=st.sampled_from(ROLES), name=_NAMES)
def test_a_grant_on_star_covers_every_name_and_a_name_only_itself(role: str, name: str) -> None:
    assert role_at([(role, "*")], name) == role
    assert role_at([(role, name)], name) == role
    assert role_at([(role, name)], name + "x") is None
    assert role_at([(role, name + "*")], name + "-more") == role


@given(
    grants=st.lists(st.tuples(st.sampled_from(ROLES), _NAMES | st.just("*")), max_size=5),
    extra=st.tuples(st.sampled_from(ROLES), _NAMES.map(lambda n: n[:3] + "*")),
    name=_NAMES,
)
def test_a_role_is_the_highest_of_the_grants_that_cover_the_name(
    grants: list[tuple[str, str]], extra: tuple[str, str], name: str
) -> None:
    before = role_at(grants, name)
    after = role_at([*grants, extra], name)
    covering = [r for r, pattern in grants if pattern == "*" or pattern == name]
    assert before == (max(covering, key=ROLES.index) if covering else None)
    if before is not None:  # another grant never lowers a role
        assert after is not None and includes(after, before)


@given(role=st.sampled_from(ROLES), pattern=_NAMES | st.sampled_from(["?", "[*]", "**"]))
def test_only_a_grant_on_star_covers_the_whole_store(role: str, pattern: str) -> None:
    assert matches("*", "*")
    assert role_at([(role, pattern)], "*") == (role if pattern == "*" else None)


def test_every_action_names_a_role_and_an_unknown_action_is_refused_to_all(
    store: trenches.Store,
) -> None:
    assert set(ACTIONS.values()) <= set(ROLES)
    for needed in (
        "datasets.read",
        "patterns.relabel",
        "problems.add",
        "models.promote.candidate",
        "models.promote.production",
        "models.promote.force",
        "feedback.add",
        "runs.create",
        "audit.read",
        "users.manage",
    ):
        assert needed in ACTIONS
    root = store.accounts.create("root", admin=True)
    assert store.grants.role_of(root, "anything") == "admin"
    assert store.grants.allowed(root, "users.manage")
    for unknown in ("models.delete", "audit.edit", "", "users.manage.extra"):
        assert not store.grants.allowed(root, unknown)
    with pytest.raises(Forbidden, match="not an action anyone may do"):
        store.grants.require(root, "audit.edit")


def test_each_role_may_do_what_the_table_says_and_nothing_more(store: trenches.Store) -> None:
    for role in ROLES:
        store.accounts.create(role)
        store.grants.grant(role, role, "tumours")
    for role in ROLES:
        user = store.accounts.get(role)
        for action, needed in ACTIONS.items():
            assert store.grants.allowed(user, action, "tumours") == includes(role, needed)
            assert not store.grants.allowed(user, action, "other")
            assert not store.grants.allowed(user, action)  # the whole store needs "*"
    with pytest.raises(Forbidden, match="needs the role approver"):
        store.grants.require("tester", "models.promote.production", "tumours")
    assert promotion_action("candidate", force=False) == "models.promote.candidate"
    assert promotion_action("production", force=False) == "models.promote.production"
    assert promotion_action("candidate", force=True) == "models.promote.force"
    assert ACTIONS[promotion_action("shadow", force=False)] == "approver"


def test_grants_on_patterns_give_the_highest_role_that_matches(store: trenches.Store) -> None:
    store.accounts.create("ada")
    store.grants.grant("ada", "viewer", "*")
    store.grants.grant("ada", "tester", "tum*")
    store.grants.grant("ada", "maintainer", "tumours")
    assert store.grants.role_of("ada", "tumours") == "maintainer"
    assert store.grants.role_of("ada", "tumours-v2") == "tester"
    assert store.grants.role_of("ada", "fraud") == "viewer"
    assert store.grants.grant("ada", "labeller", "tumours").role == "labeller"  # replaced
    assert store.grants.role_of("ada", "tumours") == "tester"
    assert [(g.role, g.namespace) for g in store.grants.list("ada")] == [
        ("viewer", "*"),
        ("tester", "tum*"),
        ("labeller", "tumours"),
    ]
    store.grants.revoke("ada", "tum*")
    assert store.grants.role_of("ada", "tumours-v2") == "viewer"
    with pytest.raises(NotFound, match="no grant"):
        store.grants.revoke("ada", "tum*")
    store.accounts.disable("ada")
    assert store.grants.role_of("ada", "fraud") is None
    with pytest.raises(InvalidInput, match="must be one of"):
        store.grants.grant("ada", "owner", "fraud")
    with pytest.raises(InvalidInput, match="namespace"):
        store.grants.grant("ada", "viewer", "two words")


# --- the audit log -------------------------------------------------------------------


def test_a_change_that_commits_has_exactly_one_row_naming_who_and_from_where(
    store: trenches.Store,
) -> None:
    admin = store.accounts.create("root", admin=True)
    with acting_as(Actor("root", admin.id, remote="10.1.2.3", request_id="req-7")):
        store.accounts.create("ada", password=PASSWORD)
    (entry,) = store.audit.list(action="users.create", user="root")
    assert (entry.actor, entry.user_id, entry.remote, entry.request_id) == (
        "root",
        admin.id,
        "10.1.2.3",
        "req-7",
    )
    assert entry.target == "user:ada" and entry.detail == {"admin": False, "password": True}
    assert PASSWORD not in str(_rows(store, "audit_log"))
    local = "local:" + getpass.getuser()
    assert [e.actor for e in store.audit.list(action="users.create")] == ["root", local]


def test_a_write_that_raises_leaves_no_audit_row(store: trenches.Store) -> None:
    with pytest.raises(RuntimeError), change("test.fails", "user:eve"), write(store.engine) as conn:
        conn.execute(t.users.insert().values(name="eve", admin=False, created_at=1))
        raise RuntimeError("the change fails before it commits")
    assert _rows(store, "users") == [] and _rows(store, "audit_log") == []
    store.accounts.create("ci")
    store.accounts.disable("ci")
    with pytest.raises(Conflict):  # refused inside its write transaction
        store.tokens.create("ci", "x", expires_in=None)
    assert _actions(store) == ["users.disable", "users.create"]


def test_a_change_of_several_transactions_records_one_row_in_its_first(
    store: trenches.Store,
) -> None:
    with change("test.two", "users:two") as marked:
        store.accounts.create("ada")  # marked inside: part of this change
        assert marked.recorded and _actions(store) == ["test.two"]
        with pytest.raises(RuntimeError), write(store.engine) as conn:
            conn.execute(t.users.insert().values(name="eve", admin=False, created_at=1))
            raise RuntimeError("the second transaction fails")
        store.accounts.create("bob")
    assert _actions(store) == ["test.two"]
    assert [u.name for u in store.accounts.list()] == ["ada", "bob"]


def test_promotion_problem_additions_and_relabels_are_recorded(store: trenches.Store) -> None:
    ds, corner = noisy_corner(store, n=200)
    store.models.promote("tree@1", "candidate", reason="memorised the corner")
    store.problems.create("corner", dataset=ds.name, title="The noisy corner")
    store.problems.add("corner", positive=corner[:3], backfill=False)
    relabelled = store.patterns.relabel(corner[0], "a", source="expert", reason="looked again")
    entries = {e.action: e for e in store.audit.list()}
    assert set(entries) == {
        "datasets.create",
        "patterns.add",
        "snapshots.create",
        "runs.create",
        "models.register",
        "models.promote",
        "problems.add",
        "patterns.relabel",
    }
    assert (
        entries["datasets.create"].target == entries["patterns.add"].target == f"dataset:{ds.name}"
    )
    run = store.runs.list()[0]
    assert entries["runs.create"].target == f"run:{run.id}"
    assert entries["models.register"].target == "model:tree@1"
    assert entries["models.register"].detail["run"] == run.id
    promote = entries["models.promote"]
    assert promote.target == "model:tree@1"
    assert promote.detail == {
        "alias": "candidate",
        "reason": "memorised the corner",
        "force": False,
    }
    assert entries["problems.add"].target == "problem:corner"
    assert entries["problems.add"].detail == {"positive": corner[:3], "negative": []}
    relabel = entries["patterns.relabel"]
    assert relabel.target == f"pattern:{corner[0]}"
    assert relabel.detail["new_pattern"] == relabelled.id and relabel.detail["label"] == "a"
    assert {e.actor for e in entries.values()} == {"local:" + getpass.getuser()}


def test_the_log_is_read_newest_first_by_actor_action_and_time(store: trenches.Store) -> None:
    ada = store.accounts.create("ada")
    with acting_as(Actor("ada", ada.id)):
        store.grants.grant("ada", "viewer")
        store.tokens.create("ada", "laptop", expires_in=timedelta(days=1))
    assert _actions(store) == ["tokens.create", "grants.add", "users.create"]
    assert [e.action for e in store.audit.list(user="ada")] == ["tokens.create", "grants.add"]
    assert [e.action for e in store.audit.list(action="tokens")] == ["tokens.create"]
    assert store.audit.list(action="token") == []  # a family is whole words
    assert len(store.audit.list(limit=1)) == 1
    assert store.audit.list(since="2999-01-01") == []
    assert len(store.audit.list(since="1h")) == 3
    with pytest.raises(InvalidInput, match="limit"):
        store.audit.list(limit=0)
    # Nothing to edit: reading is all there is.
    assert [n for n in dir(store.audit) if not n.startswith("_")] == ["list"]


def test_the_log_pages_on_from_an_id_and_filters_by_target_prefix(
    store: trenches.Store,
) -> None:
    for name in ("ada", "adam", "bob"):
        store.accounts.create(name)
    newest = store.audit.list(limit=2)
    assert [e.target for e in newest] == ["user:bob", "user:adam"]
    older = store.audit.list(limit=2, before=newest[-1].id)
    assert [e.target for e in older] == ["user:ada"]
    assert [e.target for e in store.audit.list(target="user:ada")] == ["user:adam", "user:ada"]
    # The prefix is taken as it is written, not as a LIKE pattern.
    assert store.audit.list(target="user:_d") == []


def test_the_audit_log_reads_back_as_json(store: trenches.Store) -> None:
    store.accounts.create("ada")
    (entry,) = store.audit.list()
    assert trenches.from_json(trenches.AuditEntry, trenches.to_json(entry)) == entry


# --- the command line ----------------------------------------------------------------


@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "store"
    monkeypatch.setenv("TRENCHES_DB_URL", str(where))
    trenches.open(where).close()
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    return where


def test_users_are_added_listed_disabled_and_given_passwords(cli_store: Path) -> None:
    code, out, err = run_cli("users", "add", "ada", "--password-file", "pw")
    assert code == 0, err
    assert "ada" in out
    assert run_cli("users", "add", "ci", "--no-password", "--admin")[0] == 0
    code, out, _ = run_cli("users", "list", "--json")
    listed = {u["name"]: u for u in json.loads(out)}
    assert listed["ada"]["has_password"] and listed["ci"]["admin"]
    Path("pw2").write_text("another long password\n")
    assert run_cli("users", "password", "ci", "--password-file", "pw2")[0] == 0
    assert run_cli("users", "disable", "ada")[0] == 0
    code, _, err = run_cli("users", "disable", "ada")
    assert code == 2 and "disabled already" in err
    with trenches.open(cli_store) as store:
        assert store.accounts.verify("ci", "another long password").admin
        with pytest.raises(NotAuthenticated):
            store.accounts.verify("ada", PASSWORD)
    code, _, err = run_cli("users", "add", "bob", "--password", PASSWORD)
    assert code == 2 and "No such option" in err  # never on the command line
    Path("short").write_text("hunter2\n")
    code, _, err = run_cli("users", "add", "bob", "--password-file", "short")
    assert code == 2 and "at least 12 characters" in err


def _until(fd: int, marker: bytes, seen: bytearray) -> None:
    """Read the terminal's output into ``seen`` until ``marker`` shows (or it ends)."""
    deadline = time.monotonic() + 120
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end closed
            return
        if not chunk:
            return
        seen += chunk


def _echo_off(fd: int) -> None:
    """Wait until the terminal stops echoing: the prompt reads unseen from then on (and
    drops what was typed before)."""
    deadline = time.monotonic() + 60
    while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_password_is_asked_for_at_the_terminal_twice_and_not_shown(cli_store: Path) -> None:
    script = str(Path(sys.executable).parent / "trenches")
    env = {**os.environ, "TRENCHES_DB_URL": str(cli_store)}
    pid, fd = pty.fork()  # the command gets a terminal of its own
    if pid == 0:
        os.execve(script, [script, "users", "add", "ada"], env)
    seen = bytearray()
    try:
        for prompt in (b"password:", b"confirmation:"):
            _until(fd, prompt, seen)
            _echo_off(fd)
            os.write(fd, PASSWORD.encode() + b"\n")
        _until(fd, b"\x00never", seen)  # to the end
    finally:
        os.close(fd)  # a command still waiting for input ends on the hang-up
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    assert b"added (id 1)" in seen and PASSWORD.encode() not in seen
    with trenches.open(cli_store) as store:
        assert store.accounts.verify("ada", PASSWORD).name == "ada"


def test_without_a_terminal_the_password_comes_from_a_file_or_stdin(
    cli_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli("users", "add", "ada")
    assert code == 2 and "no terminal" in err and "--password-file" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert run_cli("users", "add", "ada", "--password-file", "-")[0] == 0
    with trenches.open(cli_store) as store:
        assert store.accounts.verify("ada", PASSWORD).name == "ada"


def test_a_token_is_printed_once_listed_without_it_and_revoked(cli_store: Path) -> None:
    run_cli("users", "add", "ci", "--no-password")
    code, out, err = run_cli("tokens", "create", "ci", "github", "--expires-in", "30d")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("trn_") and "only time" in err
    code, listed, _ = run_cli("tokens", "list", "--json")
    assert secret not in listed and '"name": "github"' in listed
    with trenches.open(cli_store) as store:
        assert store.tokens.verify(secret).name == "ci"
        token_id = store.tokens.list("ci")[0].id
    assert run_cli("tokens", "revoke", str(token_id))[0] == 0
    with trenches.open(cli_store) as store, pytest.raises(NotAuthenticated):
        store.tokens.verify(secret)
    code, _, err = run_cli("tokens", "create", "ci", "x", "--expires-in", "soon")
    assert code == 2 and "30m, 12h, 90d, 2w or never" in err
    code, out, _ = run_cli("tokens", "create", "ci", "forever", "--expires-in", "never", "--json")
    made = json.loads(out)
    assert made["token"]["expires_at"] is None and made["secret"].startswith("trn_")


def test_grants_are_added_listed_and_removed(cli_store: Path) -> None:
    run_cli("users", "add", "ada", "--no-password")
    code, out, err = run_cli("grants", "add", "ada", "tester", "tum*")
    assert code == 0, err
    assert "ada is tester on tum*" in out
    assert run_cli("grants", "add", "ada", "viewer")[0] == 0
    code, out, _ = run_cli("grants", "list", "--json")
    assert [(g["role"], g["namespace"]) for g in json.loads(out)] == [
        ("viewer", "*"),
        ("tester", "tum*"),
    ]
    code, _, err = run_cli("grants", "add", "ada", "owner")
    assert code == 2 and "must be one of viewer" in err
    assert run_cli("grants", "remove", "ada", "tum*")[0] == 0
    with trenches.open(cli_store) as store:
        assert store.grants.role_of("ada", "tumours") == "viewer"


def test_the_audit_command_shows_who_changed_what(cli_store: Path) -> None:
    run_cli("users", "add", "ada", "--no-password")
    run_cli("grants", "add", "ada", "viewer")
    code, out, err = run_cli("audit", "--json", "--action", "grants")
    assert code == 0, err
    (entry,) = json.loads(out)
    assert entry["action"] == "grants.add" and entry["target"] == "user:ada"
    assert entry["actor"] == "local:" + getpass.getuser()
    code, out, _ = run_cli("audit", "--limit", "5")
    assert "users.create" in out and "grants.add" in out
    code, out, _ = run_cli("audit", "--user", "nobody")
    assert "no changes recorded that match" in out


def test_every_team_command_explains_itself() -> None:
    for words in (
        ["users", "add"],
        ["users", "password"],
        ["tokens", "create"],
        ["grants", "add"],
        ["audit"],
    ):
        code, out, _ = run_cli(*words, "--help")
        assert code == 0 and "Example:" in out
    code, out, _ = run_cli("grants", "--help")
    assert "approver (promotion to production" in out


# --- browser sessions ---------------------------------------------------------------


def test_a_session_keeps_only_hashes_and_ends_by_sign_out_expiry_or_disabling(
    store: trenches.Store,
) -> None:
    store.accounts.create("ada", password="a few words make a password")
    with pytest.raises(NotAuthenticated):
        store.sessions.sign_in("ada", "not the password")
    made = store.sessions.sign_in("ada", "a few words make a password", remote="10.0.0.7")
    assert made.secret not in repr(made) and "csrf" not in trenches.to_json(made)
    with store.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(t.sessions.select()) for v in row)
    assert made.secret not in stored and made.csrf not in stored
    assert hashlib.sha256(made.secret.encode()).hexdigest() in stored
    signed = store.sessions.verify(made.secret)
    assert signed.user.name == "ada" and signed.csrf_matches(made.csrf)
    assert not signed.csrf_matches("forged") and not signed.csrf_matches(None)
    assert [s.remote for s in store.sessions.list("ada")] == ["10.0.0.7"]
    store.sessions.sign_out(made.secret)
    with pytest.raises(NotAuthenticated):
        store.sessions.verify(made.secret)
    short = store.sessions.sign_in(
        "ada", "a few words make a password", lifetime=timedelta(seconds=1)
    )
    time.sleep(1.1)
    with pytest.raises(NotAuthenticated):
        store.sessions.verify(short.secret)
    live = store.sessions.sign_in("ada", "a few words make a password")
    store.accounts.disable("ada")
    with pytest.raises(NotAuthenticated):
        store.sessions.verify(live.secret)
    assert [e.action for e in store.audit.list(action="sessions")].count("sessions.start") == 3
