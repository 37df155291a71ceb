"""Provider adapters: hand one rendered message to SMS, WeChat, email or the dev inbox.

An :class:`Adapter` gets an :class:`Outgoing` (the message as stored, rendered, with the
provider's template spec) and returns a :class:`Receipt` (the provider's id), or raises
:class:`~loyalist.messaging.channels.DeliveryFailed` with the provider's code and
whether trying again can help. Adapters hold no database session: the delivery job
(``outbox.deliver``) records what they answer.

* :class:`AliyunSms` — Aliyun SMS ``SendSms`` (dysmsapi, RPC style, API version
  2017-05-25): the documented common parameters, HMAC-SHA1 signature version 1.0,
  ``Code``/``BizId`` answers.
* :class:`WeChat` — the official account's template message
  (``/cgi-bin/message/template/send``) and the mini programme's subscribe message
  (``/cgi-bin/message/subscribe/send``), with the access token from
  ``/cgi-bin/token`` cached until shortly before ``expires_in`` and refreshed once on
  40001/42001; ``errcode``/``msgid`` answers.
* The legacy channels in ``channels.py`` (SMTP, log, dev inbox) implement ``deliver`` too.
"""

from __future__ import annotations

import json
import threading
import time as _time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loyalist.messaging import domain
from loyalist.messaging.channels import DeliveryFailed, Outgoing, Receipt

if TYPE_CHECKING:  # imported when first used: its CLI pulls in rich and pygments
    import httpx


def _failed(code: str, detail: str, *, retry: bool, refused: bool = False) -> DeliveryFailed:
    exc = DeliveryFailed(f"{code}: {detail}"[:500])
    exc.code = code
    exc.retry = retry
    exc.refused = refused
    return exc


class AliyunSms:
    name = "aliyun_sms"

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        endpoint: str = "https://dysmsapi.aliyuncs.com/",
        region: str = "cn-hangzhou",
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        import httpx  # lazily: see TYPE_CHECKING above

        self.access_key_id, self.secret = access_key_id, access_key_secret
        self.sign_name, self.endpoint, self.region = sign_name, endpoint, region
        self.client = client or httpx.Client(timeout=timeout_s)

    def request_params(
        self, out: Outgoing, *, nonce: str | None = None, now: datetime | None = None
    ) -> dict[str, str]:
        spec = out.provider
        if not spec.get("template_code"):
            raise _failed(
                "no_sms_template", f"template {out.template} has no SMS template", retry=False
            )
        phone = out.to.removeprefix("+86") if out.to.startswith("+86") else out.to.lstrip("+")
        at = (now or datetime.now(UTC)).astimezone(UTC)
        params = {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": str(out.message_id),
            "PhoneNumbers": phone,
            "RegionId": self.region,
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "TemplateCode": str(spec["template_code"]),
            "TemplateParam": json.dumps(dict(spec.get("params") or {}), ensure_ascii=False),
            "Timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
        }
        params["Signature"] = domain.aliyun_signature("POST", params, self.secret)
        return params

    def deliver(self, out: Outgoing) -> Receipt:
        import httpx  # lazily: see TYPE_CHECKING above

        params = self.request_params(out)
        try:
            resp = self.client.post(self.endpoint, data=params)
            answer = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _failed("network", type(exc).__name__, retry=True) from exc
        code = str(answer.get("Code", ""))
        if code == "OK":
            return Receipt(str(answer.get("BizId") or ""), "OK", answer.get("RequestId"))
        raise _failed(
            code or f"http_{resp.status_code}",
            str(answer.get("Message", "")),
            retry=code in domain.ALIYUN_RETRY or resp.status_code >= 500,
        )


class WeChat:
    """One WeChat app (an official account or a mini programme): appid and secret."""

    name = "wechat"

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        kind: str,  # "template" (official account) or "subscribe" (mini programme)
        base_url: str = "https://api.weixin.qq.com",
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        miniprogram_state: str = "formal",
    ) -> None:
        import httpx  # lazily: see TYPE_CHECKING above

        if kind not in ("template", "subscribe"):
            raise ValueError("kind is 'template' or 'subscribe'")
        self.app_id, self.app_secret, self.kind = app_id, app_secret, kind
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout_s)
        self.state = miniprogram_state
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def access_token(self, *, refresh: bool = False) -> str:
        import httpx  # lazily: see TYPE_CHECKING above

        with self._lock:
            if not refresh and self._token and self._token[1] > _time.monotonic():
                return self._token[0]
            try:
                resp = self.client.get(
                    f"{self.base_url}/cgi-bin/token",
                    params={
                        "grant_type": "client_credential",
                        "appid": self.app_id,
                        "secret": self.app_secret,
                    },
                )
                answer = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise _failed("network", type(exc).__name__, retry=True) from exc
            token = answer.get("access_token")
            if not token:
                code = str(answer.get("errcode", "no_token"))
                raise _failed(code, str(answer.get("errmsg", "")), retry=code == "-1")
            # Refresh five minutes early (the platform's advice), never keep it past expiry.
            ttl = max(60, int(answer.get("expires_in", 7200)) - 300)
            self._token = (str(token), _time.monotonic() + ttl)
            return str(token)

    def body(self, out: Outgoing) -> dict[str, Any]:
        spec = out.provider
        fields: Mapping[str, str] = spec.get("fields") or {}
        problems = domain.wechat_field_problems(fields)
        if problems:
            detail = "; ".join(f"{k}: {why}" for k, why in problems)
            raise _failed("field_limit", detail, retry=False)
        data = {k: {"value": v} for k, v in fields.items()}
        body: dict[str, Any] = {
            "touser": out.to,
            "template_id": spec.get("template_id"),
            "data": data,
        }
        if self.kind == "subscribe":
            if spec.get("page"):
                body["page"] = spec["page"]
            body["miniprogram_state"] = self.state
            body["lang"] = "en_US" if out.locale == "en" else "zh_CN"
        elif spec.get("page"):
            body["miniprogram"] = {"appid": self.app_id, "pagepath": spec["page"]}
        return body

    def deliver(self, out: Outgoing) -> Receipt:
        import httpx  # lazily: see TYPE_CHECKING above

        body = self.body(out)
        path = "/cgi-bin/message/" + (
            "subscribe/send" if self.kind == "subscribe" else "template/send"
        )
        for refresh in (False, True):
            token = self.access_token(refresh=refresh)
            try:
                resp = self.client.post(
                    f"{self.base_url}{path}",
                    params={"access_token": token},
                    content=json.dumps(body, ensure_ascii=False).encode(),
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
                answer = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise _failed("network", type(exc).__name__, retry=True) from exc
            code = int(answer.get("errcode", 0))
            if code == 0:
                msgid = answer.get("msgid")
                return Receipt(str(msgid) if msgid is not None else None, "0")
            if code in domain.WECHAT_TOKEN_ERRORS and not refresh:
                continue
            raise _failed(
                str(code),
                str(answer.get("errmsg", "")),
                retry=code in domain.WECHAT_RETRY,
                refused=code in (domain.WECHAT_REFUSED, domain.WECHAT_NOT_FOLLOWING),
            )
        raise _failed("token", "access token refused twice", retry=True)  # pragma: no cover


class JPush:
    """App push through JPush (极光推送) REST API v3: ``POST /v3/push`` with HTTP Basic
    ``appKey:masterSecret``, the member's app user id as the ``alias`` audience, the
    message as notification (and the subject as its title); answers ``msg_id`` or
    ``{"error": {"code", "message"}}``."""

    name = "jpush"
    RETRY = frozenset({1000, 2002, 2008})  # server error, rate limited, too busy
    REFUSED = frozenset({1011})  # no device for this audience

    def __init__(
        self,
        *,
        app_key: str,
        master_secret: str,
        endpoint: str = "https://api.jpush.cn/v3/push",
        production: bool = True,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        import httpx  # lazily: see TYPE_CHECKING above

        self.auth = (app_key, master_secret)
        self.endpoint, self.production = endpoint, production
        self.client = client or httpx.Client(timeout=timeout_s)

    def body(self, out: Outgoing) -> dict[str, Any]:
        return {
            "platform": "all",
            "audience": {"alias": [out.to]},
            "notification": {
                "alert": out.body,
                "android": {"alert": out.body, "title": out.subject},
                "ios": {"alert": {"title": out.subject, "body": out.body}},
            },
            "options": {"apns_production": self.production, "sendno": out.message_id % 2**31},
        }

    def deliver(self, out: Outgoing) -> Receipt:
        import httpx  # lazily: see TYPE_CHECKING above

        try:
            resp = self.client.post(self.endpoint, json=self.body(out), auth=self.auth)
            answer = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _failed("network", type(exc).__name__, retry=True) from exc
        if resp.status_code == 200 and answer.get("msg_id"):
            return Receipt(str(answer["msg_id"]), "200")
        error = answer.get("error") or {}
        code = int(error.get("code", resp.status_code))
        raise _failed(
            str(code),
            str(error.get("message", "")),
            retry=code in self.RETRY or resp.status_code >= 500,
            refused=code in self.REFUSED,
        )


class DevInbox:
    """Development and demo: the message row is the inbox; nothing leaves the machine."""

    name = "dev_inbox"

    def deliver(self, out: Outgoing) -> Receipt:
        return Receipt(f"inbox-{out.message_id}", "OK")
