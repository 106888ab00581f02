"""Fixtures for the LDAP connector tests: a real slapd and a real Samba AD DC per test session
(see ldap_servers.py), a fresh OU per test in each, and an organization with a connector.

A missing server binary skips the tests that need it, with the reason. LDAP tests run on SQLite;
one smoke test also runs on PostgreSQL (see test_ldap_openldap.py).
"""

from __future__ import annotations

import itertools
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SIMPLE, Connection, Server, Tls
from ldap_servers import SambaDC, Slapd, remove, samba_missing, slapd_missing
from sqlalchemy import select

from gateway.store import Database
from gateway.store.models import DirectoryGroup, DirectoryGroupMember, DirectoryUser

_counter = itertools.count(1)
ROOT_ENTRY = (
    "dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n"
)


# --- servers ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    reason = slapd_missing()
    if reason:
        pytest.skip(reason)
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    server.ldap(
        "ldapadd",
        ROOT_ENTRY.format(suffix=server.suffix),
    )
    yield server
    server.stop()


def _worker_index(request: pytest.FixtureRequest) -> int:
    worker = getattr(request.config, "workerinput", {}).get("workerid", "gw0")
    return int(worker.removeprefix("gw") or 0)


@pytest.fixture(scope="session")
def samba_dc(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SambaDC]:
    reason = samba_missing()
    if reason:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("samba")
    # Port 389/636 is fixed: each xdist worker gets its own loopback address.
    dc = SambaDC(directory, address=f"127.0.0.{2 + _worker_index(request)}")
    try:
        dc.provision()
    except Exception as exc:  # an unusable samba install: say why
        pytest.skip(f"samba-tool domain provision failed: {exc}")
    dc.start()
    yield dc
    dc.stop()
    remove(directory)


# --- directory administration in tests ------------------------------------------------------------


class DirectoryAdmin:
    """Adds and changes entries through a bound admin connection, the way an administrator's
    tools would (so overlays, memberOf and uSNChanged behave as in production)."""

    def __init__(self, conn: Connection, base: str, ad: bool, tag: str = "") -> None:
        self.tag = tag
        self.conn = conn
        self.base = base
        self.ad = ad

    def _ok(self, what: str) -> None:
        if self.conn.result["result"] != 0:
            raise RuntimeError(f"{what}: {self.conn.result}")

    def ou(self, name: str, parent: str | None = None) -> str:
        dn = f"ou={name},{parent or self.base}"
        self.conn.add(dn, ["organizationalUnit"], {"ou": name})
        self._ok(f"add {dn}")
        return dn

    def user(
        self,
        uid: str,
        parent: str,
        *,
        mail: str | None = "",
        given: str = "Given",
        sn: str = "Family",
        disabled: bool = False,
        extra: dict | None = None,
    ) -> str:
        mail = f"{uid}@example.org" if mail == "" else mail
        if self.ad:
            dn = f"CN={uid},{parent}"
            # sAMAccountName and UPN are unique in the whole domain: tag them with the test's OU.
            account = f"{uid}-{self.tag}"
            attrs = {
                "sAMAccountName": account,
                "userPrincipalName": f"{account}@test.lan",
                "givenName": given,
                "sn": sn,
                "displayName": f"{given} {sn}",
                "userAccountControl": str(546 if disabled else 544),
            }
            classes = ["top", "person", "organizationalPerson", "user"]
        else:
            dn = f"uid={uid},{parent}"
            attrs = {"uid": uid, "cn": f"{given} {sn}", "givenName": given, "sn": sn}
            if disabled:
                attrs["employeeType"] = "disabled"
            classes = ["inetOrgPerson"]
        if mail:
            attrs["mail"] = mail
        attrs.update(extra or {})
        self.conn.add(dn, classes, attrs)
        self._ok(f"add {dn}")
        return dn

    def group(self, name: str, parent: str, members: list[str] = ()) -> str:  # type: ignore[assignment]
        if self.ad:
            dn = f"CN={name},{parent}"
            attrs: dict = {"sAMAccountName": f"{name}-{self.tag}"}
            if members:
                attrs["member"] = list(members)
            self.conn.add(dn, ["top", "group"], attrs)
        else:
            dn = f"cn={name},{parent}"
            # groupOfNames needs a member: an empty group names itself's parent OU
            self.conn.add(dn, ["groupOfNames"], {"cn": name, "member": list(members) or [parent]})
        self._ok(f"add {dn}")
        return dn

    def posix_group(self, name: str, parent: str, gid: int, uids: list[str]) -> str:
        dn = f"cn={name},{parent}"
        self.conn.add(dn, ["posixGroup"], {"cn": name, "gidNumber": str(gid), "memberUid": uids})
        self._ok(f"add {dn}")
        return dn

    def add_members(self, group: str, members: list[str]) -> None:
        self.conn.modify(group, {"member": [(MODIFY_ADD, members)]})
        self._ok(f"add members to {group}")

    def remove_members(self, group: str, members: list[str]) -> None:
        self.conn.modify(group, {"member": [(MODIFY_DELETE, members)]})
        self._ok(f"remove members from {group}")

    def replace(self, dn: str, **attrs: object) -> None:
        self.conn.modify(
            dn, {k: [(MODIFY_REPLACE, v if isinstance(v, list) else [v])] for k, v in attrs.items()}
        )
        self._ok(f"modify {dn}")

    def rename(self, dn: str, new_rdn: str, new_parent: str | None = None) -> str:
        self.conn.modify_dn(dn, new_rdn, new_superior=new_parent)
        self._ok(f"rename {dn}")
        return f"{new_rdn},{new_parent or dn.split(',', 1)[1]}"

    def delete(self, dn: str) -> None:
        self.conn.delete(dn)
        self._ok(f"delete {dn}")

    def set_disabled(self, dn: str, disabled: bool) -> None:
        if self.ad:
            self.replace(dn, userAccountControl=str(546 if disabled else 544))
        else:
            self.replace(dn, employeeType="disabled" if disabled else "staff")


@pytest.fixture(scope="session")
def slapd_admin(slapd: Slapd) -> Iterator[Connection]:
    conn = Connection(Server(slapd.url), slapd.root_dn, slapd.root_pw, auto_bind=True)
    yield conn
    conn.unbind()


@pytest.fixture
def openldap(slapd: Slapd, slapd_admin: Connection) -> DirectoryAdmin:
    """A fresh OU with ou=people and ou=groups for one test."""
    admin = DirectoryAdmin(slapd_admin, slapd.suffix, ad=False)
    base = admin.ou(f"t{next(_counter)}-{uuid.uuid4().hex[:6]}")
    admin.base = base
    admin.ou("people", base)
    admin.ou("groups", base)
    return admin


@pytest.fixture(scope="session")
def samba_admin(samba_dc: SambaDC) -> Iterator[Connection]:
    tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(samba_dc.ca_file), valid_names=["*"])
    server = Server(samba_dc.address, port=636, use_ssl=True, tls=tls)
    conn = Connection(
        server,
        f"Administrator@{samba_dc.realm.lower()}",
        samba_dc.admin_password,
        authentication=SIMPLE,
        auto_bind=True,
    )
    yield conn
    conn.unbind()


@pytest.fixture
def ad(samba_dc: SambaDC, samba_admin: Connection) -> DirectoryAdmin:
    tag = f"{uuid.uuid4().hex[:5]}"
    admin = DirectoryAdmin(samba_admin, samba_dc.base_dn, ad=True, tag=tag)
    base = f"OU=t{next(_counter)}-{tag},{samba_dc.base_dn}"
    samba_admin.add(base, ["organizationalUnit"])
    admin._ok(f"add {base}")
    admin.base = base
    return admin


# --- organizations and connectors -----------------------------------------------------------------


def openldap_connector(slapd: Slapd, base: str, **overrides: object) -> dict:
    doc = {
        "preset": "openldap",
        "servers": [slapd.url],
        "bind": {"user": slapd.root_dn, "password_env": "SCIMGATE_TEST_SLAPD_PW"},
        "base_dn": base,
        "user_base": "ou=people",
        "group_base": "ou=groups",
        "disabled": {"attribute": "employeeType", "values": ["disabled"]},
        "page_size": 50,
    }
    doc.update(overrides)
    return doc


def ad_connector(dc: SambaDC, base: str, **overrides: object) -> dict:
    doc = {
        "preset": "ad",
        "servers": [dc.ldaps_url],
        "tls": {"ca_file": str(dc.ca_file), "server_name": dc.server_name},
        "bind": {
            "user": f"Administrator@{dc.realm.lower()}",
            "password_env": "SCIMGATE_TEST_AD_PW",
        },
        "base_dn": base,
        "page_size": 200,
    }
    doc.update(overrides)
    return doc


@pytest.fixture(autouse=True)
def _directory_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIMGATE_TEST_SLAPD_PW", Slapd.root_pw)
    monkeypatch.setenv("SCIMGATE_TEST_AD_PW", SambaDC.admin_password)


def configure(database: Database, connectors: dict[str, dict], org_name: str = "Acme") -> str:
    """An organization whose settings hold these connectors; returns its id."""
    from connectors.ldap.config import SETTINGS_KEY, parse_document
    from gateway.orgs import create_org

    document = {"connectors": connectors}
    parse_document(document)
    with database.transaction() as session:
        org = create_org(session, org_name)
        org.settings = {SETTINGS_KEY: document}
        return org.id


def connector(database: Database, org_id: str, name: str = "main"):  # type: ignore[no-untyped-def]
    from connectors.ldap.config import org_connectors
    from gateway.store.models import Organization

    with database.read() as session:
        return org_connectors(session.get(Organization, org_id).settings)[name]


class DirectoryState:
    """The directory rows of one source, keyed by what a reader recognizes."""

    def __init__(self, database: Database, org_id: str, source: str = "ldap:main") -> None:
        with database.read() as session:
            self.users = {
                u.user_name: u
                for u in session.scalars(
                    select(DirectoryUser).where(
                        DirectoryUser.org_id == org_id, DirectoryUser.source == source
                    )
                )
            }
            self.groups = {
                g.display_name: g
                for g in session.scalars(
                    select(DirectoryGroup).where(
                        DirectoryGroup.org_id == org_id, DirectoryGroup.source == source
                    )
                )
            }
            by_id_user = {u.id: name for name, u in self.users.items()}
            by_id_group = {g.id: name for name, g in self.groups.items()}
            self.members: dict[str, set[str]] = {name: set() for name in self.groups}
            self.child_groups: dict[str, set[str]] = {name: set() for name in self.groups}
            self.member_rows = sorted(
                session.execute(
                    select(
                        DirectoryGroupMember.group_id,
                        DirectoryGroupMember.user_id,
                        DirectoryGroupMember.child_group_id,
                    )
                    .join(DirectoryGroup, DirectoryGroup.id == DirectoryGroupMember.group_id)
                    .where(DirectoryGroup.org_id == org_id, DirectoryGroup.source == source)
                ),
                key=str,
            )
            for group_id, user_id, child_id in self.member_rows:
                if user_id:
                    self.members[by_id_group[group_id]].add(by_id_user[user_id])
                else:
                    self.child_groups[by_id_group[group_id]].add(by_id_group[child_id])

    def snapshot(self) -> tuple:
        """Everything about the rows, to compare before and after a failed run."""
        return (
            sorted(
                (u.id, u.external_id, u.user_name, u.active, u.version, str(u.resource))
                for u in self.users.values()
            ),
            sorted((g.id, g.external_id, g.display_name, g.version) for g in self.groups.values()),
            self.member_rows,
        )


@pytest.fixture
def sqlite_database(database: Database, db_kind: str) -> Database:
    """LDAP tests run on SQLite only (one smoke test covers PostgreSQL)."""
    if db_kind != "sqlite":
        pytest.skip(
            "LDAP connector tests run on SQLite; the PostgreSQL smoke test covers the other"
        )
    return database


@pytest.fixture
def postgresql_database(database: Database, db_kind: str) -> Database:
    if db_kind != "postgresql":
        pytest.skip("runs on PostgreSQL only (advisory locks, several processes)")
    return database


@pytest.fixture
def fresh_slapd(tmp_path: Path) -> Iterator[Slapd]:
    """A slapd of one's own, for tests that stop the server."""
    reason = slapd_missing()
    if reason:
        pytest.skip(reason)
    server = Slapd(tmp_path / "own-slapd")
    server.start()
    server.ldap(
        "ldapadd",
        ROOT_ENTRY.format(suffix=server.suffix),
    )
    yield server
    server.stop()
