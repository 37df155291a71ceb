"""Fake Aliyun SMS and WeChat servers on loopback, written from the providers' documented
request formats, signatures and error codes (independently of the adapters under test).

* Aliyun SMS (dysmsapi ``SendSms``, RPC style): form-encoded common parameters,
  HMAC-SHA1 signature over ``POST&%2F&<percent-encoded canonical query>`` with key
  ``secret + "&"``; answers ``{"Code": "OK", "BizId": …}`` or a documented error
  ``Code`` (``SignatureDoesNotMatch``, ``isv.MOBILE_NUMBER_ILLEGAL``,
  ``isv.TEMPLATE_MISSING_PARAMETERS``, ``SignatureNonceUsed``,
  ``isv.BUSINESS_LIMIT_CONTROL`` …).
* WeChat: ``GET /cgi-bin/token`` (client_credential), ``POST
  /cgi-bin/message/template/send`` and ``/cgi-bin/message/subscribe/send`` with
  ``access_token`` in the query; ``errcode`` 0 and ``msgid``, or 40001 (token),
  40125 (secret), 43004 (not following), 43101 (subscription refused / used up), 47003
  (argument invalid, e.g. a ``thing`` over 20 characters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

ALIYUN_REQUIRED = (
    "AccessKeyId",
    "Action",
    "Format",
    "PhoneNumbers",
    "RegionId",
    "SignName",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "TemplateCode",
    "Timestamp",
    "Version",
    "Signature",
)


def _enc(s: str) -> str:
    # Aliyun's documented rule: A-Z a-z 0-9 - _ . ~ kept, others %XY (UTF-8), space %20.
    return quote(s, safe="-_.~")


@dataclass
class AliyunFake:
    access_key_id: str = "LTAI-test"
    secret: str = "test-secret"
    # template code -> the parameters it needs
    templates: dict[str, set[str]] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)  # codes to answer first, in order
    requests: list[dict[str, str]] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    url: str = ""

    def answer(self, method: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(params)
        rid = str(uuid.uuid4())
        missing = [k for k in ALIYUN_REQUIRED if k not in params]
        if missing:
            return 400, {"Code": "MissingParameter", "Message": missing[0], "RequestId": rid}
        if params["AccessKeyId"] != self.access_key_id:
            return 404, {"Code": "InvalidAccessKeyId.NotFound", "RequestId": rid}
        signed = {k: v for k, v in params.items() if k != "Signature"}
        canonical = "&".join(f"{_enc(k)}={_enc(signed[k])}" for k in sorted(signed))
        to_sign = f"{method}&{_enc('/')}&{_enc(canonical)}"
        expected = base64.b64encode(
            hmac.new((self.secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, params["Signature"]):
            return 400, {
                "Code": "SignatureDoesNotMatch",
                "Message": "Specified signature is not matched with our calculation.",
                "RequestId": rid,
            }
        if (
            params["SignatureMethod"] != "HMAC-SHA1"
            or params["SignatureVersion"] != "1.0"
            or params["Version"] != "2017-05-25"
            or params["Action"] != "SendSms"
        ):
            return 400, {"Code": "InvalidParameter", "RequestId": rid}
        if params["SignatureNonce"] in self.nonces:
            return 400, {"Code": "SignatureNonceUsed", "RequestId": rid}
        self.nonces.add(params["SignatureNonce"])
        if self.script:
            code = self.script.pop(0)
            return 200, {"Code": code, "Message": code, "RequestId": rid}
        phones = params["PhoneNumbers"].split(",")
        if not all(len(p) == 11 and p.startswith("1") and p.isdigit() for p in phones):
            return 200, {
                "Code": "isv.MOBILE_NUMBER_ILLEGAL",
                "Message": "非法手机号",
                "RequestId": rid,
            }
        needed = self.templates.get(params["TemplateCode"])
        if needed is None:
            return 200, {
                "Code": "isv.SMS_TEMPLATE_ILLEGAL",
                "Message": "模板不合法",
                "RequestId": rid,
            }
        given = json.loads(params.get("TemplateParam") or "{}")
        if not needed <= set(given):
            return 200, {
                "Code": "isv.TEMPLATE_MISSING_PARAMETERS",
                "Message": "模板缺少变量",
                "RequestId": rid,
            }
        return 200, {
            "Code": "OK",
            "Message": "OK",
            "BizId": f"{len(self.requests):06d}^0",
            "RequestId": rid,
        }


_THING = 20


@dataclass
class WeChatFake:
    app_id: str = "wx-test-app"
    secret: str = "wx-test-secret"
    token_requests: int = 0
    tokens: set[str] = field(default_factory=set)
    # openid -> template id -> authorisations left (subscribe messages)
    subscriptions: dict[str, dict[str, int]] = field(default_factory=dict)
    followers: set[str] = field(default_factory=set)  # official-account followers
    sent: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def token(self, query: dict[str, str]) -> dict[str, Any]:
        self.token_requests += 1
        if query.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if query.get("appid") != self.app_id:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if query.get("secret") != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        tok = uuid.uuid4().hex
        self.tokens.add(tok)
        return {"access_token": tok, "expires_in": 7200}

    def send(self, kind: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if query.get("access_token") not in self.tokens:
            return {
                "errcode": 40001,
                "errmsg": "invalid credential, access_token is invalid or not latest",
            }
        touser, template_id = body.get("touser"), body.get("template_id")
        data = body.get("data")
        if not touser or not template_id or not isinstance(data, dict):
            return {"errcode": 47001, "errmsg": "data format error"}
        for key, item in data.items():
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, str) or (key.startswith("thing") and len(value) > _THING):
                return {"errcode": 47003, "errmsg": f"argument invalid! data.{key}.value invalid"}
        if kind == "template":
            if touser not in self.followers:
                return {"errcode": 43004, "errmsg": "require subscribe"}
        else:
            left = self.subscriptions.get(touser, {}).get(template_id, 0)
            if left < 1:
                return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
            self.subscriptions[touser][template_id] = left - 1
        self.sent.append({"kind": kind, **body})
        return {"errcode": 0, "errmsg": "ok", "msgid": 200228330 + len(self.sent)}


@dataclass
class JPushFake:
    """JPush REST API v3 ``POST /v3/push``: HTTP Basic ``appKey:masterSecret``; an alias
    audience with no device is error 1011; a bad key or secret 1004 (HTTP 401)."""

    app_key: str = "jp-app-key"
    master_secret: str = "jp-master-secret"
    aliases: set[str] = field(default_factory=set)
    pushes: list[dict[str, Any]] = field(default_factory=list)

    def push(self, authorization: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{self.app_key}:{self.master_secret}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, {"error": {"code": 1004, "message": "Authen failed"}}
        aliases = (body.get("audience") or {}).get("alias") or []
        alert = (body.get("notification") or {}).get("alert")
        if body.get("platform") not in ("all", ["android", "ios"]) or not alert:
            return 400, {"error": {"code": 1003, "message": "Parameter value is invalid"}}
        if not any(a in self.aliases for a in aliases):
            return 400, {"error": {"code": 1011, "message": "cannot find user by this audience"}}
        self.pushes.append(body)
        return 200, {
            "sendno": str(body["options"]["sendno"]),
            "msg_id": str(54043195528 + len(self.pushes)),
        }


def _handler(
    aliyun: AliyunFake | None, wechat: WeChatFake | None, jpush: JPushFake | None = None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            if wechat is not None and parts.path == "/cgi-bin/token":
                self._reply(200, wechat.token(query))
            else:
                self._reply(404, {"errcode": 404})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if aliyun is not None and parts.path == "/":
                params = dict(parse_qsl(raw.decode(), keep_blank_values=True))
                self._reply(*aliyun.answer("POST", params))
            elif jpush is not None and parts.path == "/v3/push":
                auth = self.headers.get("Authorization")
                self._reply(*jpush.push(auth, json.loads(raw.decode("utf-8"))))
            elif wechat is not None and parts.path.startswith("/cgi-bin/message/"):
                kind = "template" if parts.path.endswith("template/send") else "subscribe"
                self._reply(200, wechat.send(kind, query, json.loads(raw.decode("utf-8"))))
            else:
                self._reply(404, {"errcode": 404})

    return Handler


@contextmanager
def fake_server(
    *,
    aliyun: AliyunFake | None = None,
    wechat: WeChatFake | None = None,
    jpush: JPushFake | None = None,
) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(aliyun, wechat, jpush))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for fake in (aliyun, wechat):
        if fake is not None:
            fake.url = url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
