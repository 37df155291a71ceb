"""Console: bulk import (导入, issue 13 item 5) — a CSV or Excel file is uploaded and
validated with nothing written (the exact row-by-row report in Chinese), confirmed, and
imported by background jobs that report their progress; the same file again changes
nothing; a stopped import resumes where it stopped; only ``jobs.manage`` may import."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.console import console_client, login, make_users
from tests.itest import counts

from loyalist.bulkimport import uploads
from loyalist.config import get_settings
from loyalist.jobs import queue
from loyalist.models import AuditLog, ImportBatch, Job, Member

MEMBERS = (
    "external_id,phone,email,name,birthday,gender,home_store,tags\n"
    "C001,13800138001,wang@example.cn,王小明,1990-05-01,male,sh1,vip;coffee\n"
    "C002,13800138002,,李华,,female,sz1,\n"
    "C003,,li@example.cn,,,,,\n"
)
BUSINESS = ("member", "member_identity", "import_batch", "job", "audit_log", "ledger_entry")


@pytest.fixture(autouse=True)
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    where = tmp_path / "imports"
    monkeypatch.setenv("LOYALIST_IMPORT_DIR", str(where))
    get_settings.cache_clear()
    yield where
    get_settings.cache_clear()


@pytest.fixture
def console(world: Any) -> Iterator[TestClient]:
    make_users(world.db)
    with console_client(world.db) as c:
        yield c


def upload(
    c: TestClient, csrf: str, kind: str, content: str | bytes, name: str = "members.csv"
) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return c.post(
        "/admin/import",
        data={"csrf_token": csrf, "kind": kind},
        files={"file": (name, io.BytesIO(data), "application/octet-stream")},
        headers={"accept-language": "zh-CN"},
        follow_redirects=False,
    )


def hidden(html: str) -> dict[str, str]:
    """The confirmation form's hidden fields."""
    form = html.split('action="/admin/import/start"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))


def confirm(c: TestClient, csrf: str, html: str) -> Any:
    return c.post(
        "/admin/import/start", data={**hidden(html), "csrf_token": csrf}, follow_redirects=False
    )


def state(c: TestClient, batch_id: int) -> dict[str, str]:
    html = c.get(f"/admin/import?batch={batch_id}", headers={"hx-request": "true"}).text
    tag = re.search(r'<div id="import-state"[^>]*>', html)
    assert tag is not None, html
    return dict(re.findall(r'data-(\w+)="([^"]*)"', tag.group(0)))


def business(db: Any) -> dict[str, int]:
    return counts(db, BUSINESS)


def test_upload_validates_then_the_confirmed_import_runs_in_jobs_with_progress(
    world: Any, console: TestClient, import_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = world.db
    monkeypatch.setattr(uploads, "JOB_ROWS", 2)  # two jobs for three rows: progress between
    csrf = login(console, db, "admin")
    before = business(db)
    r = upload(console, csrf, "members", MEMBERS)
    assert r.status_code == 200, r.text
    assert "members.csv 校验通过：共 3 行待导入。尚未写入任何数据。" in r.text
    assert business(db) == before  # validated, nothing written
    digest = hidden(r.text)["checksum"]
    kept = sorted(p.name for p in import_dir.iterdir())
    assert kept == [f"{digest}.csv", f"{digest}.csv.rows.jsonl"]
    assert (import_dir / f"{digest}.csv").read_bytes() == MEMBERS.encode()

    started = confirm(console, csrf, r.text)
    assert started.status_code == 303
    m = re.fullmatch(r"/admin/import\?batch=(\d+)&notice=queued", started.headers["location"])
    assert m is not None, started.headers["location"]
    batch_id = int(m.group(1))
    assert state(console, batch_id) == {
        "testid": "import-state",
        "status": "running",
        "done": "0",
        "total": "3",
    }
    assert queue.run_until_empty(db, limit=1) == 1  # the first job: rows 2 and 3 of the file
    now = state(console, batch_id)
    assert (now["status"], now["done"]) == ("running", "2")
    assert queue.run_until_empty(db) == 1
    assert state(console, batch_id)["status"] == "done"
    page = console.get(f"/admin/import?batch={batch_id}", headers={"accept-language": "zh-CN"})
    assert 'data-created="3" data-unchanged="0"' in page.text
    assert "完成：导入 3 行，0 行已存在。" in page.text
    with db.transaction() as s:
        ext = sorted(x for x in s.scalars(select(Member.external_id)) if x)
        assert ext == ["C001", "C002", "C003"]
        actions = list(
            s.scalars(
                select(AuditLog.action)
                .where(AuditLog.action.like("import.%"))
                .order_by(AuditLog.id)
            )
        )
        assert actions == ["import.start", "import.queue", "import.finish"]
        assert s.scalar(select(AuditLog.actor).where(AuditLog.action == "import.finish")) == (
            "user:admin"
        )
        jobs = list(s.scalars(select(Job.state).where(Job.kind == uploads.JOB_KIND)))
        assert jobs == ["done", "done"]
    assert list(import_dir.iterdir()) == []  # the imported file is not kept any more


def test_a_bad_file_gives_the_exact_report_in_chinese_and_writes_nothing(
    world: Any, console: TestClient, import_dir: Path
) -> None:
    db = world.db
    csrf = login(console, db, "admin")
    bad = (
        "external_id,phone,email,name,birthday,gender,home_store,tags\n"
        "C001,13800138001,,王小明,,,sh1,\n"
        "C001,13800138002,,李华,,,nowhere,\n"
        ",13800138001,,,,,,\n"
        "\n"
        "C004,,,,1990-13-01,,,\n"
    )
    before = counts(db)
    r = upload(console, csrf, "members", bad)
    assert r.status_code == 422
    rows = re.findall(r'<tr data-row="(\d+)" data-field="(\w+)" data-code="(\w+)">', r.text)
    assert rows == [
        ("3", "external_id", "duplicate_in_file"),
        ("3", "home_store", "unknown_store"),
        ("4", "external_id", "missing"),
        ("4", "phone", "duplicate_in_file"),
        ("6", "birthday", "invalid"),
    ]
    assert 'data-testid="import-report" data-count="5"' in r.text
    assert "members.csv 中有 5 处问题：未导入任何数据。请修正文件后重新上传。" in r.text
    for words in ("与第 2 行重复", "未知门店，或门店不在您的管理范围内", "值无效"):
        assert words in r.text
    assert 'action="/admin/import/start"' not in r.text
    assert counts(db) == before  # nothing written, not even a batch or a job
    assert not import_dir.exists() or list(import_dir.iterdir()) == []

    header = upload(console, csrf, "points", "external_id,member,pts,earned_at\nB-1,C001,5,x\n")
    found = re.findall(r'<tr data-row="(\d+)" data-field="(\w+)" data-code="(\w+)">', header.text)
    assert found == [("1", "points", "missing_column"), ("1", "pts", "unknown_column")]
    assert "缺少必填列" in header.text and "未知的列" in header.text
    wrong = upload(console, csrf, "members", MEMBERS, name="members.txt")
    assert wrong.status_code == 422
    assert 'data-error="file">文件必须是 CSV 或 Excel（.xlsx）文件。' in wrong.text
    no_kind = upload(console, csrf, "everything", MEMBERS)
    assert no_kind.status_code == 422 and 'data-error="kind"' in no_kind.text
    assert counts(db) == before
    assert not import_dir.exists() or list(import_dir.iterdir()) == []


def test_the_same_file_twice_changes_nothing(
    world: Any, console: TestClient, import_dir: Path
) -> None:
    db = world.db
    csrf = login(console, db, "admin")
    first = upload(console, csrf, "members", MEMBERS)
    batch_url = confirm(console, csrf, first.text).headers["location"]
    queue.run_until_empty(db)
    before = counts(db)
    again = upload(console, csrf, "members", MEMBERS, name="again.csv")
    assert again.status_code == 200
    assert 'data-testid="import-ready"' in again.text
    assert "该文件已导入过：没有任何变化。" in again.text
    assert 'action="/admin/import/start"' not in again.text  # nothing to confirm
    assert list(import_dir.iterdir()) == []  # and the file is not kept again
    # a confirmation posted anyway (a second tab): the same batch, done, no job
    twice = confirm(console, csrf, first.text)
    assert twice.headers["location"] == batch_url.replace("notice=queued", "notice=already")
    assert queue.run_until_empty(db) == 0
    assert counts(db) == before


def test_an_excel_file_imports_like_a_csv(world: Any, console: TestClient) -> None:
    from openpyxl import Workbook

    db = world.db
    csrf = login(console, db, "admin")
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for line in MEMBERS.strip().split("\n"):
        ws.append(line.split(","))
    buf = io.BytesIO()
    wb.save(buf)
    r = upload(console, csrf, "members", buf.getvalue(), name="会员.xlsx")
    assert r.status_code == 200, r.text[:2000]
    assert hidden(r.text)["suffix"] == ".xlsx"
    assert confirm(console, csrf, r.text).status_code == 303
    queue.run_until_empty(db)
    with db.transaction() as s:
        b = s.scalars(select(ImportBatch)).one()
        assert (b.status, b.filename, b.created, b.unchanged) == ("done", "会员.xlsx", 3, 0)


def test_a_stopped_import_resumes_where_it_stopped(
    world: Any, console: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = world.db
    monkeypatch.setattr(uploads, "JOB_ROWS", 2)
    csrf = login(console, db, "admin")
    gappy = MEMBERS.replace("\nC002", "\n\nC002")  # a blank line: 3 rows on lines 2, 4, 5
    r = upload(console, csrf, "members", gappy)
    batch_id = int(confirm(console, csrf, r.text).headers["location"].split("=")[1].split("&")[0])
    assert queue.run_until_empty(db, limit=1) == 1
    with db.transaction() as s:  # the worker dies for good: the next job is dead
        q = select(Job).where(Job.kind == uploads.JOB_KIND, Job.state == "queued")
        nxt = s.scalars(q).one()
        nxt.state, nxt.last_error = "dead", "attempt 3: worker killed"
    assert state(console, batch_id)["status"] == "failed"
    page = console.get(f"/admin/import?batch={batch_id}", headers={"accept-language": "zh-CN"})
    assert "导入已中止：已导入的行保留。" in page.text
    # the same file again: validated (the imported rows are no conflict), confirmed, resumed
    again = upload(console, csrf, "members", gappy)
    assert again.status_code == 200 and hidden(again.text)["checksum"] == hidden(r.text)["checksum"]
    resumed = confirm(console, csrf, again.text)
    assert resumed.headers["location"] == f"/admin/import?batch={batch_id}&notice=queued"
    assert queue.run_until_empty(db) == 1
    with db.transaction() as s:
        b = s.get(ImportBatch, batch_id)
        assert b is not None and (b.status, b.cursor, b.created, b.unchanged) == ("done", 3, 3, 0)
        assert s.scalar(select(ImportBatch.id).where(ImportBatch.id != batch_id)) is None
        assert sorted(x for x in s.scalars(select(Member.external_id)) if x) == [
            "C001",
            "C002",
            "C003",
        ]


def test_a_repeated_job_for_a_written_slice_does_nothing(world: Any, console: TestClient) -> None:
    db = world.db
    csrf = login(console, db, "admin")
    r = upload(console, csrf, "members", MEMBERS)
    confirm(console, csrf, r.text)
    confirm(console, csrf, r.text)  # a double click: two jobs for the same slice
    assert queue.run_until_empty(db) == 2
    with db.transaction() as s:
        b = s.scalars(select(ImportBatch)).one()
        assert (b.status, b.cursor, b.created, b.unchanged) == ("done", 3, 3, 0)
        assert len(list(s.scalars(select(Member.id)))) == 3


@pytest.mark.parametrize("user", ["east.manager", "analyst", "sh1.staff"])
def test_a_role_without_jobs_manage_is_refused_and_nothing_is_written(
    world: Any, console: TestClient, import_dir: Path, user: str
) -> None:
    db = world.db
    csrf = login(console, db, user)
    before = counts(db)
    assert console.get("/admin/import").status_code == 403
    assert upload(console, csrf, "members", MEMBERS).status_code == 403
    form = {"kind": "members", "checksum": "0" * 64, "suffix": ".csv", "filename": "x.csv"}
    r = console.post("/admin/import/start", data={**form, "csrf_token": csrf})
    assert r.status_code == 403
    assert counts(db) == before
    assert not import_dir.exists()
    assert 'href="/admin/import"' not in console.get("/admin/members").text


def test_a_row_that_became_invalid_after_the_upload_fails_its_job_and_writes_nothing(
    world: Any, console: TestClient
) -> None:
    from loyalist.kit.actor import SYSTEM
    from loyalist.member import service as members
    from loyalist.member.schemas import MemberCreate

    db = world.db
    csrf = login(console, db, "admin")
    r = upload(console, csrf, "members", MEMBERS)
    location = confirm(console, csrf, r.text).headers["location"]
    batch_id = int(location.split("=")[1].split("&")[0])
    with db.transaction() as s:  # meanwhile C002's phone joined as another member
        members.create(s, SYSTEM, MemberCreate(phone="13800138002", external_id="X-9"))
    before = counts(db)
    assert queue.run_until_empty(db) == 1
    with db.transaction() as s:
        job = s.scalars(select(Job).where(Job.kind == uploads.JOB_KIND)).one()
        assert job.state == "failed"  # retried later (then dead, the page says so)
        assert job.last_error == (
            "attempt 1: loyalist.bulkimport.uploads.RowsChanged: import_rows_changed: "
            "row 3, phone: already registered to another member"
        )
    after = counts(db)
    assert {k: after[k] - before[k] for k in after if after[k] != before[k]} == {}
    assert state(console, batch_id)["status"] == "running"
    page = console.get(f"/admin/import?batch={batch_id}", headers={"accept-language": "zh-CN"})
    assert "一次尝试失败，将自动重试。" in page.text
