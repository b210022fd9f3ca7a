"""A real OpenLDAP server (slapd from the system packages) for the directory sign-in tests.

It runs from a throw-away configuration and database on a free loopback port and is seeded with
people and groups as a hospital directory holds them. A missing slapd fails the tests (it is a
system package: `.ci/ensure-system-packages` installs it), it never skips them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import ldap
import ldap.modlist

SUFFIX = "dc=hospital,dc=example"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "directory-admin-secret"  # noqa: S105 - a throw-away test server
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SLAPD_CANDIDATES = ("/usr/sbin/slapd", "/usr/local/libexec/slapd")
SCHEMA_DIR = Path("/etc/ldap/schema")

CONFIG = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {root}/slapd.pid
database mdb
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {root}/data
maxsize 10485760
"""


def slapd_binary() -> str:
    """The slapd executable, or a failure that says how to install it."""
    found = shutil.which("slapd") or next((path for path in SLAPD_CANDIDATES if Path(path).exists()), None)
    if not found:
        raise RuntimeError(
            "slapd (OpenLDAP) is not installed: run .ci/ensure-system-packages "
            "(Debian: apt-get install slapd ldap-utils)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_slapd(root: Path) -> Iterator[str]:
    """Start slapd in the foreground on a free port; its ldap:// URI until the block ends."""
    (root / "data").mkdir(parents=True)
    config = root / "slapd.conf"
    config.write_text(
        CONFIG.format(
            schema=SCHEMA_DIR, root=root, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD
        )
    )
    uri = f"ldap://127.0.0.1:{free_port()}/"
    process = subprocess.Popen(
        [slapd_binary(), "-f", str(config), "-h", uri, "-d", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                admin(uri).unbind_s()
                break
            except ldap.SERVER_DOWN:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"slapd did not start: {process.stderr.read().decode()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=10)


def admin(uri: str) -> ldap.ldapobject.LDAPObject:
    """A connection bound as the directory's administrator."""
    conn = ldap.initialize(uri)
    conn.simple_bind_s(ROOT_DN, ROOT_PASSWORD)
    return conn


def _add(conn: ldap.ldapobject.LDAPObject, dn: str, attrs: dict[str, list[str]]) -> None:
    conn.add_s(dn, ldap.modlist.addModlist({k: [v.encode() for v in vs] for k, vs in attrs.items()}))


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


def seed(uri: str, people: dict[str, dict], groups: dict[str, list[str]]) -> None:
    """Replace the directory: ``people`` {uid: {password, employeeType?}}, ``groups`` {cn: [uid]}."""
    conn = admin(uri)
    try:
        existing = conn.search_s(SUFFIX, ldap.SCOPE_SUBTREE, "(objectClass=*)", attrlist=["1.1"])
        for dn, _ in sorted(existing, key=lambda entry: -len(entry[0])):
            conn.delete_s(dn)
    except ldap.NO_SUCH_OBJECT:
        pass
    _add(conn, SUFFIX, {"objectClass": ["dcObject", "organization"], "dc": ["hospital"], "o": ["Hospital"]})
    for ou in ("people", "groups"):
        _add(conn, f"ou={ou},{SUFFIX}", {"objectClass": ["organizationalUnit"], "ou": [ou]})
    for uid, info in people.items():
        attrs = {
            "objectClass": ["inetOrgPerson"],
            "uid": [uid],
            "cn": [info.get("cn", uid)],
            "sn": [info.get("sn", uid.title())],
            "givenName": [info.get("givenName", "Test")],
            "mail": [f"{uid}@hospital.example"],
            "userPassword": [info["password"]],
        }
        if info.get("employeeType"):
            attrs["employeeType"] = [info["employeeType"]]
        _add(conn, person_dn(uid), attrs)
    for cn, members in groups.items():
        _add(
            conn,
            group_dn(cn),
            {"objectClass": ["groupOfNames"], "cn": [cn], "member": [person_dn(m) for m in members]},
        )
    conn.unbind_s()


def set_attribute(uri: str, dn: str, name: str, values: list[str]) -> None:
    """Replace one attribute of an entry (e.g. switch a person off)."""
    conn = admin(uri)
    conn.modify_s(dn, [(ldap.MOD_REPLACE, name, [value.encode() for value in values])])
    conn.unbind_s()
