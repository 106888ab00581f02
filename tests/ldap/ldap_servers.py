"""Throwaway directory servers for the LDAP tests and the benchmark: a real OpenLDAP slapd and a
real Samba AD DC, each in a temp dir on loopback (facts in /work/shared/directories.md).

Does: write the configuration, start the server in the foreground, wait until it answers, load
LDIF with ldapadd/ldapmodify, stop it. Does not: know anything about scimgate.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")


def make_cert(directory: Path, cn: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (also used as its own CA)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={cn}",
            "-addext",
            f"subjectAltName=IP:{cn}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def slapd_missing() -> str | None:
    for binary in (SLAPD, SLAPADD, "/usr/bin/ldapadd"):
        if not Path(binary).exists():
            return f"{binary} is not installed (apt-get install slapd ldap-utils)"
    return None


class Slapd:
    """One slapd with dc=example,dc=org, memberOf + refint overlays, LDAP and LDAPS."""

    suffix = "dc=example,dc=org"
    root_dn = "cn=admin,dc=example,dc=org"
    root_pw = "secret"

    def __init__(self, directory: Path, *, size_limit: int = 500) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port()
        self.size_limit = size_limit
        self.proc: subprocess.Popen | None = None
        self.cert, self.key = make_cert(directory)

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def _config_ldif(self) -> str:
        schemas = "".join(
            f"include: file:///etc/ldap/schema/{name}.ldif\n\n"
            for name in ("core", "cosine", "inetorgperson", "nis")
        )
        db = self.dir / "db"
        db.mkdir(exist_ok=True)
        return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.dir}/slapd.pid
olcTLSCertificateFile: {self.cert}
olcTLSCertificateKeyFile: {self.key}
olcSizeLimit: {self.size_limit}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: refint

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: {self.size_limit}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcRootDN: cn=admin,cn=config

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {self.suffix}
olcRootDN: {self.root_dn}
olcRootPW: {self.root_pw}
olcDbDirectory: {db}
olcDbMaxSize: 1073741824
olcDbIndex: objectClass eq
olcDbIndex: entryUUID eq
olcDbIndex: modifyTimestamp eq
olcDbIndex: member eq
olcDbIndex: memberUid eq
olcLimits: dn.exact="{self.root_dn}" size=unlimited time=unlimited
olcAccess: to * by * read

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={{1}}refint,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {{1}}refint
olcRefintAttribute: memberof
olcRefintAttribute: member
"""

    def load_offline(self, ldif: str) -> None:
        """Bulk load before start (slapadd: fast, but overlays such as memberOf do not run)."""
        self._configure()
        path = self.dir / "data.ldif"
        path.write_text(ldif)
        subprocess.run(
            [SLAPADD, "-q", "-n1", "-F", str(self.dir / "slapd.d"), "-l", str(path)],
            check=True,
            capture_output=True,
        )

    def _configure(self) -> None:
        slapd_d = self.dir / "slapd.d"
        if not slapd_d.exists():
            slapd_d.mkdir()
            ldif = self.dir / "config.ldif"
            ldif.write_text(self._config_ldif())
            subprocess.run(
                [SLAPADD, "-n0", "-F", str(slapd_d), "-l", str(ldif)],
                check=True,
                capture_output=True,
            )

    def start(self) -> None:
        self._configure()
        slapd_d = self.dir / "slapd.d"
        self.proc = subprocess.Popen(
            [SLAPD, "-F", str(slapd_d), "-h", f"{self.url}/ {self.ldaps_url}/", "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port("127.0.0.1", self.port)
        wait_for_port("127.0.0.1", self.tls_port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def ldap(self, tool: str, ldif: str, *extra: str) -> None:
        """Run ldapadd / ldapmodify / ldapdelete as the root DN with `ldif` on stdin."""
        proc = subprocess.run(
            [
                f"/usr/bin/{tool}",
                "-x",
                "-H",
                self.url,
                "-D",
                self.root_dn,
                "-w",
                self.root_pw,
                *extra,
            ],
            input=ldif,
            text=True,
            capture_output=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}")


def samba_missing() -> str | None:
    for binary in (SAMBA, SAMBA_TOOL):
        if not Path(binary).exists():
            return f"{binary} is not installed (apt-get install samba samba-ad-dc)"
    if os.geteuid() != 0:
        return "the Samba AD DC needs root (LDAP port 389)"
    return None


class SambaDC:
    """A Samba AD DC for realm TEST.LAN on its own loopback address, LDAP only."""

    realm = "TEST.LAN"
    domain = "TEST"
    base_dn = "DC=test,DC=lan"
    admin_password = "Adm1n-Passw0rd!"
    server_name = "DC1.test.lan"

    def __init__(self, directory: Path, address: str = "127.0.0.2") -> None:
        self.dir = directory
        self.address = address
        self.proc: subprocess.Popen | None = None

    @property
    def smb_conf(self) -> Path:
        return self.dir / "etc" / "smb.conf"

    @property
    def ca_file(self) -> Path:
        return self.dir / "private" / "tls" / "ca.pem"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.address}:636"

    def provision(self) -> None:
        subprocess.run(
            [
                SAMBA_TOOL,
                "domain",
                "provision",
                "--use-rfc2307",
                f"--realm={self.realm}",
                f"--domain={self.domain}",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--host-name=DC1",
                f"--adminpass={self.admin_password}",
                f"--targetdir={self.dir}",
                f"--option=interfaces={self.address}/8",
                "--option=bind interfaces only=yes",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        conf = self.smb_conf.read_text()
        extra = (
            "\tldap server require strong auth = no\n"
            "\tserver services = ldap\n"
            f"\tinterfaces = {self.address}/8\n"
            "\tbind interfaces only = yes\n"
            f"\tpid directory = {self.dir}/run\n"
            f"\tlock directory = {self.dir}/lock\n"
            f"\tlog file = {self.dir}/log.%m\n"
            "\tpassword hash userPassword schemes =\n"
            "\tcheck password script =\n"
        )
        conf = conf.replace("[global]\n", "[global]\n" + extra, 1)
        self.smb_conf.write_text(conf)
        for sub in ("run", "lock"):
            (self.dir / sub).mkdir(exist_ok=True)
        # No password complexity or history: tests create many users quickly.
        self.tool(
            "domain",
            "passwordsettings",
            "set",
            "--complexity=off",
            "--history-length=0",
            "--min-pwd-age=0",
            "--max-pwd-age=0",
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SAMBA, "-i", "-M", "single", "-s", str(self.smb_conf)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.address, 636, timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def tool(self, *args: str) -> str:
        # samba-tool writes to the database directly (sam.ldb), beside the running server.
        proc = subprocess.run(
            [SAMBA_TOOL, *args, "-s", str(self.smb_conf)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"samba-tool {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
