"""The member page's own data export (privacy2, issue 13 item 3): a link on the home page,
/m/export answers the signed-in member's zip (theirs only, audited as the member); signed
out it sends to sign-in and writes nothing; an erased member's session is gone, so no export."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.integration.member_web.conftest import make_member, sign_in
from tests.itest import counts

from loyalist.kit.actor import SYSTEM
from loyalist.models import AuditLog
from loyalist.privacy import service as privacy


def test_a_member_downloads_their_own_data(
    world: Any, app_client: Callable[..., TestClient]
) -> None:
    ada = make_member(world.db, "13912340001", points=300, name="艾达")
    bob = make_member(world.db, "13912340002", points=50, name="鲍勃")
    c = app_client()
    sign_in(c, world.db, ada)
    home = c.get("/m")
    assert home.status_code == 200
    assert 'href="/m/export" data-testid="export-mine"' in home.text and "下载我的数据" in home.text
    r = c.get("/m/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["cache-control"] == "no-store"
    z = zipfile.ZipFile(io.BytesIO(r.content))
    manifest = json.loads(z.read("manifest.json"))
    assert manifest["member_id"] == ada.id
    [me] = json.loads(z.read("member.json"))
    assert (me["id"], me["phone"], me["name"]) == (ada.id, ada.e164, "艾达")
    entries = json.loads(z.read("ledger_entries.json"))
    assert [(e["member_id"], e["delta_available"]) for e in entries] == [(ada.id, 300)]
    assert bob.e164 not in r.content.decode("latin-1")  # nothing of another member
    with world.db.transaction() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.action == "member.export")).all()
        assert [(a.object_id, a.actor) for a in rows] == [(str(ada.id), f"member:{ada.id}")]


def test_signed_out_export_sends_to_sign_in_and_writes_nothing(
    world: Any, app_client: Callable[..., TestClient]
) -> None:
    make_member(world.db, "13912340003")
    before = counts(world.db)
    r = app_client().get("/m/export")
    assert (r.status_code, r.headers["location"]) == (303, "/m/signin")
    assert counts(world.db) == before


def test_an_erased_members_session_cannot_export(
    world: Any, app_client: Callable[..., TestClient]
) -> None:
    ada = make_member(world.db, "13912340004")
    c = app_client()
    sign_in(c, world.db, ada)
    with world.db.transaction() as s:
        privacy.erase(s, SYSTEM, ada.id)
    before = counts(world.db)
    r = c.get("/m/export")
    assert (r.status_code, r.headers["location"]) == (303, "/m/signin")  # sessions deleted
    assert counts(world.db) == before


def test_the_service_refuses_another_members_export() -> None:
    import pytest

    from loyalist.errors import Forbidden
    from loyalist.member_web.views import member_actor

    with pytest.raises(Forbidden):
        privacy.export_own(None, member_actor(1), 2)  # type: ignore[arg-type]
