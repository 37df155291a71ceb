"""Console: identity merge (issue 13 item 2) — duplicate pairs with their reasons and a
dismiss button, the merge preview, the merge confirmed by a CSRF form, the merge page with
its undo button, and the reason an undo is refused; permissions per role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import console_client, login, make_users, post
from tests.itest import new_member

from loyalist.ledger import service as ledger
from loyalist.merge import service as merges
from loyalist.models import AuditLog, DuplicateCandidate, Member, MemberMerge


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def pairs(world: Any, client: Any) -> tuple[int, int, int, int]:
    """Two pairs found by the nightly job (same name and birthday): A+B, C+D; B has 500
    points."""
    ids = [
        new_member(client, phone, name=name, birthday="1990-04-01", home_store="sh1")
        for phone, name in (
            ("13900007001", "李雷"),
            ("13900007002", "李雷"),
            ("13900007003", "韩梅梅"),
            ("13900007004", "韩梅梅"),
        )
    ]
    r = client.post(f"/v1/members/{ids[1]}/adjustments", json={"points": 500, "reason": "开户礼"})
    assert r.status_code == 201, r.text
    with world.db.transaction() as s:
        assert merges.find_candidates(s) == 2
    return ids[0], ids[1], ids[2], ids[3]


def available(world: Any, member_id: int) -> int:
    with world.db.transaction() as s:
        return int(ledger.own_account(s, member_id).available)


def test_preview_merge_and_undo_through_the_console(
    world: Any, client: Any, console: TestClient
) -> None:
    a, b, c, d = pairs(world, client)
    with world.db.transaction() as s:
        cands = {
            (x.member_a_id, x.member_b_id): x.id for x in s.scalars(select(DuplicateCandidate))
        }
    ab, cd = cands[(a, b)], cands[(c, d)]

    # An analyst reads the pairs but has no buttons, and may neither preview nor dismiss.
    csrf = login(console, world.db, "analyst")
    page = console.get("/admin/duplicates")
    assert page.status_code == 200 and f'data-candidate-id="{ab}"' in page.text
    assert 'data-testid="dismiss"' not in page.text and 'data-testid="preview"' not in page.text
    assert console.get(f"/admin/members/{a}/merge?merged_id={b}").status_code == 403
    assert post(console, f"/admin/duplicates/{cd}/dismiss", csrf).status_code == 403
    assert 'data-testid="merge-link"' not in console.get(f"/admin/members/{a}").text
    # A store elsewhere does not see the pairs at all.
    login(console, world.db, "sz1.staff")
    assert f'data-candidate-id="{ab}"' not in console.get("/admin/duplicates").text

    csrf = login(console, world.db, "admin")
    console.cookies.set("loyalist_lang", "zh_CN")
    page = console.get("/admin/duplicates")
    assert "重复会员" in page.text and "姓名和生日相同" in page.text
    assert 'data-testid="dismiss"' in page.text
    # No CSRF token: refused, nothing written.
    r = console.post(f"/admin/duplicates/{cd}/dismiss", data={}, follow_redirects=False)
    assert r.status_code == 403
    r = post(console, f"/admin/duplicates/{cd}/dismiss", csrf)
    assert (r.status_code, r.headers["location"]) == (303, "/admin/duplicates?notice=dismissed")
    assert "已标记为不是同一人" in console.get(r.headers["location"]).text
    assert "合并重复会员" in console.get(f"/admin/members/{a}").text

    # The preview, from the pair's link and by the member number typed.
    page = console.get(f"/admin/members/{a}/merge?merged_id={b}")
    assert page.status_code == 200, page.text[:300]
    html = page.text
    assert 'data-can-merge="true"' in html
    assert 'data-testid="available-after" data-value="500"' in html
    assert 'data-testid="tier-after" data-value="base"' in html
    assert '<li data-kind="identities"' in html and "转移给保留会员的内容" in html
    assert 'data-testid="confirm-merge"' in html
    with world.db.transaction() as s:
        b_no = s.get(Member, b).member_no  # type: ignore[union-attr]
    assert 'data-can-merge="true"' in console.get(f"/admin/members/{a}/merge?merged_no={b_no}").text
    assert console.get(f"/admin/members/{a}/merge?merged_no=NOPE404").status_code == 404
    with world.db.transaction() as s:
        assert s.scalar(select(MemberMerge.id)) is None  # a preview writes nothing

    # Confirm: the merge page with its undo button; the list shows it.
    r = post(console, f"/admin/members/{a}/merge", csrf, {"merged_id": str(b)})
    assert r.status_code == 303, r.text[:300]
    url = r.headers["location"]
    merge_id = int(url.split("/")[-1].split("?")[0])
    assert url == f"/admin/merges/{merge_id}?notice=merged"
    page = console.get(url).text
    assert "会员已合并" in page and 'data-testid="undo"' in page
    assert 'data-testid="points-moved" data-value="500"' in page
    assert f'data-merge-id="{merge_id}" data-status="done"' in console.get("/admin/merges").text
    assert (available(world, a), available(world, b)) == (500, 0)
    # The pair is merged now; the preview says the members cannot be merged again.
    assert f'data-candidate-id="{ab}" data-status="merged"' in (
        console.get("/admin/duplicates?status=merged").text
    )
    page = console.get(f"/admin/members/{b}/merge?merged_id={a}").text
    assert 'data-can-merge="false"' in page and 'data-code="already_merged"' in page

    # Undo through the button: both members as they were.
    r = post(console, f"/admin/merges/{merge_id}/undo", csrf)
    assert (r.status_code, r.headers["location"]) == (
        303,
        f"/admin/merges/{merge_id}?notice=undone",
    )
    page = console.get(r.headers["location"]).text
    assert "合并已撤销" in page and 'data-reason="undone"' in page
    assert 'data-testid="undo"' not in page
    assert (available(world, a), available(world, b)) == (0, 500)

    # Merge again, then something happens to the survivor: the undo is refused, with why.
    r = post(console, f"/admin/members/{a}/merge", csrf, {"merged_id": str(b)})
    second = int(r.headers["location"].split("/")[-1].split("?")[0])
    r = client.post(f"/v1/members/{a}/adjustments", json={"points": 10, "reason": "服务补偿"})
    assert r.status_code == 201, r.text
    page = console.get(f"/admin/merges/{second}").text
    assert 'data-reason="activity"' in page and "保留会员的积分账户有变动" in page
    assert 'data-testid="undo"' not in page
    r = post(console, f"/admin/merges/{second}/undo", csrf)
    assert (
        r.status_code == 409 and "此合并无法撤销" in r.text and "保留会员的积分账户有变动" in r.text
    )
    assert (available(world, a), available(world, b)) == (510, 0)

    with world.db.transaction() as s:
        rows = list(s.scalars(select(AuditLog).where(AuditLog.actor == "user:admin")))
        actions = [x.action for x in rows if x.action.startswith("member.")]
    assert actions == [
        "member.duplicate.dismiss",
        "member.merge",
        "member.merge.undo",
        "member.merge",
    ]


def test_the_pages_in_english(world: Any, client: Any, console: TestClient) -> None:
    a, b, _c, _d = pairs(world, client)
    login(console, world.db, "admin")
    console.cookies.set("loyalist_lang", "en")
    assert "same name and birthday" in console.get("/admin/duplicates").text
    page = console.get(f"/admin/members/{a}/merge?merged_id={b}").text
    assert "What moves to the survivor" in page and "重复" not in page
