"""Personal data at rest (issue 13): phone, e-mail, name, birthday and identity values are
AES-GCM ciphertexts in the database file / rows, found again by their blind index (joins by
phone stay idempotent), audit rows and stored answers hold no clear values, keys rotate
online (a process follows a rotation it did not make) and nothing is lost under load, the
logs of all this hold none of the distinctive values."""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String, select, text, type_coerce
from tests.conftest import BACKEND
from tests.integration.cli.test_cli_commands import Cli, cli, run  # noqa: F401 (fixtures)
from tests.itest import rows

from loyalist.config import get_settings
from loyalist.kit import crypto
from loyalist.kit.actor import SYSTEM
from loyalist.kit.db import Database
from loyalist.member import service as members
from loyalist.member.schemas import MemberCreate, MemberUpdate
from loyalist.models import Member, MemberIdentity
from loyalist.privacy import keys

PHONE = "13987654321"
E164 = "+86" + PHONE
EMAIL = "qiuyueling.privacy@example.org"
NAME = "邱月翎"
OPENID = "oZx9PrivacyOpenid42"
BIRTHDAY = "1987-11-23"
DISTINCTIVE = (PHONE, EMAIL, NAME, OPENID, BIRTHDAY, "qiuyueling")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the test, at every level; none may hold a distinctive value."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    text_ = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    )
    leaked = [v for v in DISTINCTIVE if v in text_]
    assert leaked == [], f"personal data in the logs: {leaked}"


@pytest.fixture
def keyfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "keys" / "loyalist-keys.json"
    monkeypatch.setenv("LOYALIST_KEYFILE", str(path))
    get_settings.cache_clear()
    crypto.reset()
    yield path
    monkeypatch.delenv("LOYALIST_KEYFILE")
    get_settings.cache_clear()
    crypto.reset()


def join(client: Any, **extra: Any) -> Any:
    body = {
        "phone": PHONE,
        "email": EMAIL,
        "name": NAME,
        "birthday": BIRTHDAY,
        "identities": [{"kind": "wechat_openid", "value": OPENID}],
        **extra,
    }
    return client.post("/v1/members", json=body, headers={"Idempotency-Key": "join-1"})


def stored_bytes(db: Database) -> bytes:
    """What the database holds: the SQLite file (and its WAL), or every PostgreSQL row of
    the tables (as text)."""
    if BACKEND == "sqlite":
        db.dispose()
        path = Path(db.url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    with db.engine.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        ]
        dump = [
            str(r[0])
            for t in tables
            for r in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{t}" t'))
        ]
    return "\n".join(dump).encode("utf-8")


def test_personal_fields_are_ciphertexts_at_rest_and_found_by_blind_index(
    world: Any, client: Any, logs: Any
) -> None:
    r = join(client)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    assert (r.json()["phone"], r.json()["email"], r.json()["name"]) == (E164, EMAIL, NAME)
    # the same join again (and a replayed key) is the same member: idempotent by phone
    again = client.post("/v1/members", json={"phone": "139 8765 4321"})
    assert (again.status_code, again.json()["id"]) == (200, mid)
    replay = join(client)
    assert (replay.status_code, replay.json()["id"], replay.json()["phone"]) == (201, mid, E164)
    # found by each identity, through the API and the service
    for params in ({"phone": PHONE}, {"email": EMAIL}, {"q": f" {NAME} "}):
        got = client.get("/v1/members", params=params)
        assert [m["id"] for m in got.json()["items"]] == [mid], params
    got = client.get("/v1/members", params={"identity_type": "wechat_openid", "identity": OPENID})
    assert [m["id"] for m in got.json()["items"]] == [mid]
    with world.db.transaction() as s:
        assert members.find_by_identity(s, "phone", E164).id == mid  # type: ignore[union-attr]
        assert s.scalar(select(Member.id).where(Member.phone == E164)) == mid
        assert s.scalar(select(Member.id).where(Member.email.in_([EMAIL]))) == mid
        m = s.get(Member, mid)
        assert m is not None
        assert (m.phone, m.email, m.name, m.birthday) == (E164, EMAIL, NAME, date(1987, 11, 23))
        assert sorted(members.identities(s, mid)) == [
            ("email", EMAIL),
            ("phone", E164),
            ("wechat_openid", OPENID),
        ]
    # at rest: ciphertexts naming their key; blind indexes are HMACs, not the values
    [raw] = rows(
        world.db,
        "SELECT phone, email, name, birthday, phone_bidx, email_bidx, name_bidx FROM member "
        "WHERE id = :i",
        i=mid,
    )
    for col in ("phone", "email", "name", "birthday"):
        assert str(raw[col]).startswith("enc:k0:"), col
    assert raw["phone_bidx"] == crypto.blind("phone", E164) and len(raw["phone_bidx"]) == 64
    idents = rows(world.db, "SELECT value FROM member_identity WHERE member_id = :i", i=mid)
    assert len(idents) == 3 and all(str(v["value"]).startswith("enc:") for v in idents)
    # an edit by staff: audited masked, never in clear
    with world.db.transaction() as s:
        members.update(s, SYSTEM, mid, MemberUpdate(name="邱月翎翎", city="杭州"))
    audit = rows(world.db, "SELECT before, after FROM audit_log ORDER BY id")
    assert audit and all(NAME not in str(a) and PHONE not in str(a) for a in audit)
    # the whole database (file, WAL / every row) holds none of the values in clear
    dump = stored_bytes(world.db)
    for value in DISTINCTIVE:
        assert value.encode("utf-8") not in dump, value
    assert "邱月翎翎".encode() not in dump


def test_a_ciphertext_moved_to_another_column_or_altered_does_not_decrypt(world: Any) -> None:
    token = crypto.encrypt("member.phone", E164)
    assert crypto.decrypt("member.phone", token) == E164
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt("member.email", token)
    raw = bytearray(base64.urlsafe_b64decode(token.split(":", 2)[2]))
    raw[-1] ^= 1
    altered = "enc:k0:" + base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt("member.phone", altered)
    with pytest.raises(crypto.CryptoError, match="unknown key id 'k9'"):
        crypto.decrypt("member.phone", "enc:k9:" + token.split(":", 2)[2])
    assert crypto.encrypt("member.phone", E164) != token  # fresh nonce every time


def test_keys_rotate_online_and_other_processes_follow(
    world: Any,
    client: Any,
    cli: Cli,  # noqa: F811
    keyfile: Path,
    logs: Any,
) -> None:
    mid = join(client).json()["id"]
    for i in range(7):
        assert client.post("/v1/members", json={"phone": f"1390000{i:04d}"}).status_code == 201
    status = cli("keys", "status")
    assert status.exit_code == 0, status.output
    assert "values per key: k0=" in status.stdout
    r = cli("keys", "rotate", "--batch", "3")
    assert r.exit_code == 0, r.output
    kid = crypto.read_keyfile(keyfile)[0]
    with world.db.transaction() as s:
        usage = keys.key_usage(s)
    # 8 members (phones; one also e-mail, name, birthday) and 10 identities, all moved
    assert usage == {kid: 8 + 3 + 10}
    assert f"current key {kid}: 18 row(s) re-encrypted" in r.stdout
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    # the values and lookups are unchanged
    with world.db.transaction() as s:
        assert members.find_by_identity(s, "wechat_openid", OPENID).id == mid  # type: ignore[union-attr]
        m = s.get(Member, mid)
        assert m is not None and (m.phone, m.name) == (E164, NAME)
    # another process rotates: this one loaded its keys before and follows by key id
    ring = crypto.keyring()
    _current, stored = crypto.read_keyfile(keyfile)
    fresh = os.urandom(32)
    crypto.write_keyfile(keyfile, "kother", {**stored, "kother": fresh})
    nonce = os.urandom(12)
    token = (
        "enc:kother:"
        + base64.urlsafe_b64encode(
            nonce + AESGCM(fresh).encrypt(nonce, b"+8613900000001", b"member.phone")
        ).decode()
    )
    assert "kother" not in ring.keys
    assert crypto.decrypt("member.phone", token) == "+8613900000001"
    assert crypto.keyring().current == "kother"
    # a keyless rotation is refused, not guessed
    os.environ.pop("LOYALIST_KEYFILE")
    get_settings.cache_clear()
    refused = cli("keys", "rotate")
    assert refused.exit_code == 2 and "set LOYALIST_KEYFILE" in refused.stderr
    os.environ["LOYALIST_KEYFILE"] = str(keyfile)


def test_rotation_under_load_loses_nothing(world: Any, keyfile: Path) -> None:
    db = world.db
    with db.transaction() as s:
        for i in range(40):
            members.create(s, SYSTEM, MemberCreate(phone=f"1391111{i:04d}", name=f"会员{i}"))
    expected: dict[str, str] = {}
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        try:
            while not stop.is_set() or i < 30:
                phone = f"1392222{i:04d}"
                with db.transaction() as s:
                    members.create(s, SYSTEM, MemberCreate(phone=phone, name=f"新会员{i}"))
                expected["+86" + phone] = f"新会员{i}"
                i += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    rotation = keys.rotate(db, keyfile, batch=7)
    stop.set()
    t.join(60)
    assert errors == []
    keys.reencrypt(db, batch=7)  # anything a writer sealed under the old key meanwhile
    with db.transaction() as s:
        usage = keys.key_usage(s)
        assert set(usage) == {rotation.key_id}
        got = {m.phone: m.name for m in s.scalars(select(Member))}
        assert all(got[p] == n for p, n in expected.items())
        assert sum(1 for p in got if p and p.startswith("+861391111")) == 40
        assert len(got) == 40 + len(expected)
        # every blind index still finds its member
        for p in list(expected)[:5]:
            assert members.find_by_identity(s, "phone", p) is not None
        raw = s.scalars(select(type_coerce(MemberIdentity.value, String()))).all()
        assert all(v.startswith(f"enc:{rotation.key_id}:") for v in raw)
