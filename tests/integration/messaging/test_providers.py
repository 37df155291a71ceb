"""Adapters against real local servers: SMTP (aiosmtpd) with the rendered zh-CN template;
Aliyun SMS and WeChat (template and subscribe messages) against fake providers on
loopback that check the documented request formats and signatures and answer with the
documented error codes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.fake_providers import AliyunFake, WeChatFake, fake_server
from tests.itest import new_member
from tests.smtp_server import Mailbox, smtp_server

from loyalist import bootstrap
from loyalist.documents import service as documents
from loyalist.documents.errors import DocumentInvalid
from loyalist.jobs import queue
from loyalist.kit.actor import SYSTEM
from loyalist.messaging import outbox
from loyalist.messaging import settings as adapters
from loyalist.messaging.adapters import AliyunSms, WeChat
from loyalist.messaging.channels import SmtpChannel
from loyalist.models import Message, MessageAttempt

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
TWENTY_ONE = "一二三四五六七八九十" * 2 + "一"  # a thing keyword takes at most 20
POINTS = {"points": 500, "reason": "问卷奖励"}
SMS_SPEC = {"template_code": "SMS_71390007", "params": {"points": "{points}", "reason": "{reason}"}}
TEXTS = {
    "zh_CN": {"subject": "积分到账通知", "body": "您的账户已到账 {points} 积分：{reason}"},
    "en": {"subject": "Points added", "body": "{points} points were added: {reason}"},
}


@pytest.fixture
def fakes() -> Iterator[tuple[AliyunFake, WeChatFake, WeChatFake]]:
    bootstrap.configure()
    aliyun = AliyunFake(templates={"SMS_71390007": {"points", "reason"}})
    oa = WeChatFake(app_id="wx-oa", secret="oa-secret", followers={OPENID})
    mp = WeChatFake(app_id="wx-mp", secret="mp-secret")
    with (
        fake_server(aliyun=aliyun) as sms_url,
        fake_server(wechat=oa) as oa_url,
        fake_server(wechat=mp) as mp_url,
    ):
        adapters.use(
            {
                "sms": AliyunSms(
                    access_key_id="LTAI-test",
                    access_key_secret="test-secret",
                    sign_name="悦享会",
                    endpoint=sms_url + "/",
                ),
                "wechat_template": WeChat(
                    app_id="wx-oa", app_secret="oa-secret", kind="template", base_url=oa_url
                ),
                "wechat_subscribe": WeChat(
                    app_id="wx-mp", app_secret="mp-secret", kind="subscribe", base_url=mp_url
                ),
            }
        )
        yield aliyun, oa, mp
    adapters.reset()


def _templates(world: Any, **templates: Any) -> None:
    with world.db.transaction() as s:
        documents.publish(s, SYSTEM, "messaging", {"templates": templates}, note="test")


def _member(client: Any, phone: str = "13800000001", openid: bool = True) -> int:
    mid = new_member(client, phone)
    if openid:
        r = client.post(
            f"/v1/members/{mid}/identities", json={"kind": "wechat_openid", "value": OPENID}
        )
        assert r.status_code == 200, r.text
    return mid


def _send(world: Any, mid: int, template: str, data: Any = POINTS, **kw: Any) -> int:
    with world.db.transaction() as s:
        return outbox.send(s, mid, template, data, **kw).message_id


def _msg(world: Any, message_id: int) -> Message:
    with world.db.transaction() as s:
        m = s.get(Message, message_id)
        assert m is not None
        s.expunge(m)
        return m


def _attempts(world: Any, message_id: int) -> list[tuple[int, str, str | None, str | None]]:
    with world.db.transaction() as s:
        q = (
            select(
                MessageAttempt.attempt,
                MessageAttempt.outcome,
                MessageAttempt.code,
                MessageAttempt.provider_id,
            )
            .where(MessageAttempt.message_id == message_id)
            .order_by(MessageAttempt.id)
        )
        return [tuple(r) for r in s.execute(q)]  # type: ignore[misc]


def test_smtp_delivers_the_rendered_zh_cn_template_from_the_job(world: Any, client: Any) -> None:
    bootstrap.configure()
    with smtp_server() as box:
        box_: Mailbox = box
        adapters.use(
            {
                "email": SmtpChannel(
                    host=box_.host, port=box_.port, sender="悦享会 <club@example.com>"
                )
            }
        )
        try:
            mid = new_member(client, "13800000001", email="ada@example.com")
            _templates(world, points_awarded={"channels": ["email"], "texts": TEXTS})
            sent = _send(world, mid, "points_awarded")
            assert box_.received == []  # nothing leaves inside the business transaction
            assert queue.run_until_empty(world.db) == 1
        finally:
            adapters.reset()
    (mail,) = box_.received
    assert mail.rcpt_tos == ["ada@example.com"]
    assert mail.message["Subject"] == "积分到账通知"
    assert mail.message["Content-Language"] == "zh-CN"
    assert mail.message.get_content() == "您的账户已到账 500 积分：问卷奖励\n"
    m = _msg(world, sent)
    assert (m.status, m.provider_id) == ("sent", mail.message["Message-ID"])


def test_aliyun_sms_signed_request_and_receipt(world: Any, client: Any, fakes: Any) -> None:
    aliyun, _, _ = fakes
    _templates(world, points_awarded={"texts": TEXTS, "sms": SMS_SPEC})
    sent = _send(world, _member(client, openid=False), "points_awarded")
    assert queue.run_until_empty(world.db) == 1
    (req,) = aliyun.requests
    assert {k: req[k] for k in ("Action", "PhoneNumbers", "SignName", "TemplateCode", "OutId")} == {
        "Action": "SendSms",
        "PhoneNumbers": "13800000001",
        "SignName": "悦享会",
        "TemplateCode": "SMS_71390007",
        "OutId": str(sent),
    }
    assert req["TemplateParam"] == '{"points": "500", "reason": "问卷奖励"}'
    m = _msg(world, sent)
    assert (m.status, m.provider_id) == ("sent", "000001^0")
    assert _attempts(world, sent) == [(1, "sent", "OK", "000001^0")]


def test_aliyun_errors_retry_or_fail_as_documented(
    world: Any, client: Any, clock: Any, fakes: Any
) -> None:
    aliyun, _, _ = fakes
    _templates(world, points_awarded={"texts": TEXTS, "sms": SMS_SPEC})
    mid = _member(client, openid=False)
    # Flow control (isv.BUSINESS_LIMIT_CONTROL) is worth a retry; the second try passes.
    aliyun.script = ["isv.BUSINESS_LIMIT_CONTROL"]
    throttled = _send(world, mid, "points_awarded")
    queue.run_until_empty(world.db)
    clock.advance(timedelta(seconds=30))
    queue.run_until_empty(world.db)
    assert [a[1:3] for a in _attempts(world, throttled)] == [
        ("failed", "isv.BUSINESS_LIMIT_CONTROL"),
        ("sent", "OK"),
    ]
    # A number outside the mainland: isv.MOBILE_NUMBER_ILLEGAL, final.
    hk = new_member(client, "+85291234567")
    illegal = _send(world, hk, "points_awarded")
    queue.run_until_empty(world.db)
    assert (_msg(world, illegal).status, _msg(world, illegal).reason) == (
        "failed",
        "isv.MOBILE_NUMBER_ILLEGAL",
    )
    # A missing template parameter: isv.TEMPLATE_MISSING_PARAMETERS, final.
    _templates(
        world,
        points_awarded={
            "texts": TEXTS,
            "sms": {"template_code": "SMS_71390007", "params": {"points": "{points}"}},
        },
    )
    missing = _send(world, mid, "points_awarded")
    queue.run_until_empty(world.db)
    assert _msg(world, missing).reason == "isv.TEMPLATE_MISSING_PARAMETERS"


def test_a_wrong_aliyun_secret_is_refused_by_the_signature_check(
    world: Any, client: Any, fakes: Any
) -> None:
    aliyun, _, _ = fakes
    adapters.use(
        {
            "sms": AliyunSms(
                access_key_id="LTAI-test",
                access_key_secret="not-the-secret",
                sign_name="悦享会",
                endpoint=aliyun.url + "/",
            )
        }
    )
    _templates(world, points_awarded={"texts": TEXTS, "sms": SMS_SPEC})
    sent = _send(world, _member(client, openid=False), "points_awarded")
    queue.run_until_empty(world.db)
    assert (_msg(world, sent).status, _msg(world, sent).reason) == (
        "failed",
        "SignatureDoesNotMatch",
    )


WX_TEMPLATE = {
    "template_id": "TPL-points-oa",
    "page": "pages/points/index",
    "fields": {"thing1": "{reason}", "number2": "{points}"},
}


def test_wechat_template_message_with_token_cache_and_refresh(
    world: Any, client: Any, fakes: Any
) -> None:
    _, oa, _ = fakes
    _templates(
        world,
        points_awarded={
            "channels": ["wechat_template", "sms"],
            "texts": TEXTS,
            "wechat_template": WX_TEMPLATE,
        },
    )
    mid = _member(client)
    first = _send(world, mid, "points_awarded")
    second = _send(world, mid, "points_awarded")
    assert queue.run_until_empty(world.db) == 2
    assert oa.token_requests == 1  # one token for both
    assert oa.sent[0] == {
        "kind": "template",
        "touser": OPENID,
        "template_id": "TPL-points-oa",
        "data": {"thing1": {"value": "问卷奖励"}, "number2": {"value": "500"}},
        "miniprogram": {"appid": "wx-oa", "pagepath": "pages/points/index"},
    }
    assert [_msg(world, i).provider_id for i in (first, second)] == ["200228331", "200228332"]
    oa.expire_tokens()  # the platform invalidated it: 40001, refresh once, send
    third = _send(world, mid, "points_awarded")
    queue.run_until_empty(world.db)
    assert oa.token_requests == 2
    assert _msg(world, third).status == "sent"


def test_wechat_template_to_a_non_follower_fails_with_43004(
    world: Any, client: Any, fakes: Any
) -> None:
    _, oa, _ = fakes
    oa.followers.clear()
    _templates(
        world,
        points_awarded={
            "channels": ["wechat_template"],
            "texts": TEXTS,
            "wechat_template": WX_TEMPLATE,
        },
    )
    sent = _send(world, _member(client), "points_awarded")
    queue.run_until_empty(world.db)
    assert (_msg(world, sent).status, _msg(world, sent).reason) == ("failed", "43004")
    assert _attempts(world, sent) == [(1, "refused", "43004", None)]


SUBSCRIBE = {
    "channels": ["wechat_subscribe", "sms"],
    "texts": TEXTS,
    "sms": SMS_SPEC,
    "wechat_subscribe": {
        "template_id": "TPL-points-mp",
        "page": "pages/points/index",
        "fields": {"thing1": "{reason}", "number2": "{points}"},
    },
}


def test_a_subscribe_message_consumes_an_authorisation_then_falls_back_to_sms(
    world: Any, client: Any, fakes: Any
) -> None:
    aliyun, _, mp = fakes
    _templates(world, points_awarded=SUBSCRIBE)
    mid = _member(client)
    mp.subscriptions = {OPENID: {"TPL-points-mp": 1}}
    with world.db.transaction() as s:
        assert outbox.grant_authorisation(s, mid, "TPL-points-mp") == 1
    first = _send(world, mid, "points_awarded")
    second = _send(world, mid, "points_awarded")
    assert queue.run_until_empty(world.db) == 2
    assert (_msg(world, first).channel, _msg(world, first).status) == ("wechat_subscribe", "sent")
    assert mp.sent[0]["miniprogram_state"] == "formal"
    assert mp.sent[0]["lang"] == "zh_CN"
    s2 = _msg(world, second)
    assert (s2.channel, s2.status, s2.reason) == ("sms", "sent", "no_authorisation")
    assert len(aliyun.requests) == 1


def test_a_refused_subscription_43101_falls_back_to_sms(
    world: Any, client: Any, fakes: Any
) -> None:
    aliyun, _, mp = fakes
    _templates(world, points_awarded=SUBSCRIBE)
    mid = _member(client)
    with world.db.transaction() as s:  # we believe in an authorisation WeChat no longer has
        outbox.grant_authorisation(s, mid, "TPL-points-mp")
    sent = _send(world, mid, "points_awarded")
    assert queue.run_until_empty(world.db) == 2  # the refused one, then its SMS fallback
    m = _msg(world, sent)
    assert (m.status, m.reason) == ("failed", "refused")
    assert _attempts(world, sent) == [(1, "refused", "43101", None)]
    with world.db.transaction() as s:
        fb = s.scalar(select(Message).where(Message.fallback_of == sent))
        assert fb is not None
        assert (fb.channel, fb.status, fb.recipient) == ("sms", "sent", "+8613800000001")
    assert aliyun.requests[0]["TemplateCode"] == "SMS_71390007"
    assert mp.sent == []


def test_wechat_field_limits_are_checked_before_calling_the_platform(
    world: Any, client: Any, fakes: Any
) -> None:
    _, oa, _ = fakes
    _templates(
        world,
        points_awarded={
            "channels": ["wechat_template"],
            "texts": TEXTS,
            "wechat_template": WX_TEMPLATE,
        },
    )
    long = {"points": 5, "reason": TWENTY_ONE}
    sent = _send(world, _member(client), "points_awarded", long)
    queue.run_until_empty(world.db)
    assert (_msg(world, sent).status, _msg(world, sent).reason) == ("failed", "field_limit")
    assert oa.sent == [] and oa.token_requests == 0


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (
            {"texts": TEXTS, "channels": ["wechat_template"], "wechat_template": {
                "template_id": "T", "fields": {"thing1": TWENTY_ONE}}},
            "fields.thing1: at most 20 characters",
        ),
        (
            {"texts": TEXTS, "channels": ["wechat_template"], "wechat_template": {
                "template_id": "T", "fields": {"thing1": "限时折扣 {reason}"}}},
            "marketing content is forbidden",
        ),
        (
            {"purpose": "marketing", "texts": TEXTS, "channels": ["wechat_subscribe"],
             "wechat_subscribe": {"template_id": "T", "fields": {"thing1": "{reason}"}}},
            "WeChat forbids marketing",
        ),
        (
            {"texts": TEXTS, "channels": ["wechat_subscribe"]},
            "wechat_subscribe: the channel is listed but has no template",
        ),
        ({"texts": {"en": TEXTS["en"]}}, "zh_CN is required"),
    ],
)  # fmt: skip
def test_templates_that_break_wechat_rules_are_refused_at_publish(
    world: Any, template: dict[str, Any], problem: str
) -> None:
    with pytest.raises(DocumentInvalid) as info, world.db.transaction() as s:
        documents.publish(s, SYSTEM, "messaging", {"templates": {"t": template}}, note=None)
    assert problem in str(info.value.errors)
    with world.db.transaction() as s, pytest.raises(Exception, match="no any version"):
        documents.get(s, "messaging")


def test_app_push_through_jpush(world: Any, client: Any) -> None:
    from tests.fake_providers import JPushFake

    from loyalist.messaging.adapters import JPush

    bootstrap.configure()
    fake = JPushFake(aliases={"APP00000001"})
    with fake_server(jpush=fake) as url:
        adapters.use(
            {
                "push": JPush(
                    app_key="jp-app-key",
                    master_secret="jp-master-secret",
                    endpoint=url + "/v3/push",
                )
            }
        )
        try:
            _templates(world, points_awarded={"channels": ["push"], "texts": TEXTS})
            mid = new_member(client, "13800000001")
            assert (
                client.post(
                    f"/v1/members/{mid}/identities", json={"kind": "app_id", "value": "APP00000001"}
                ).status_code
                == 200
            )
            other = new_member(client, "13800000002")
            assert (
                client.post(
                    f"/v1/members/{other}/identities",
                    json={"kind": "app_id", "value": "APP00000002"},
                ).status_code
                == 200
            )
            sent = _send(world, mid, "points_awarded")
            unknown = _send(world, other, "points_awarded")
            queue.run_until_empty(world.db)
        finally:
            adapters.reset()
    (push,) = fake.pushes
    assert push["audience"] == {"alias": ["APP00000001"]}
    assert push["notification"]["ios"]["alert"] == {
        "title": "积分到账通知",
        "body": "您的账户已到账 500 积分：问卷奖励",
    }
    assert (_msg(world, sent).status, _msg(world, sent).provider_id) == ("sent", "54043195529")
    assert (_msg(world, unknown).status, _msg(world, unknown).reason) == ("failed", "1011")
    assert _attempts(world, unknown) == [(1, "refused", "1011", None)]
