"""Pages say things in the page's language with the programme's own names (issue 10, item
5): rule explanations name tiers, campaigns, categories and channels as the programme
names them, whatever characters a name holds; phones in national format; audit fields by
label and money as money; every label has its Chinese."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from babel.messages.pofile import read_po
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalist.admin import explain, labels
from loyalist.admin.web import changes
from loyalist.member.domain import display_phone
from loyalist.programme import service as programmes
from loyalist.programme.domain import EarnContext, LineInput, OrderInput, evaluate_order

DEMO = Path(__file__).parents[3] / "src" / "loyalist" / "demo" / "programme.yaml"
ADMIN = Path(explain.__file__).parent


def _programme(**campaign: Any) -> Any:
    doc = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    doc["earning"]["campaigns"] = [{"code": "c1", "multiplier": "2", **campaign}]
    return programmes.parse(doc)


# Names as brands write them: Chinese, ASCII and full-width parentheses, digits, Latin.
NAMES = st.text(
    alphabet=st.sampled_from(list("会员日双倍积分春节限时()（）[] -.·11ABab")),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")


BASE = _programme(name="x", match={"categories": ["coffee_beans"], "channels": ["app"]})


@settings(deadline=None, max_examples=60)
@given(name=NAMES)
def test_a_campaign_is_explained_in_chinese_whatever_its_name_holds(name: str) -> None:
    campaign = BASE.earning.campaigns[0].model_copy(update={"name": name})
    p = BASE.model_copy(
        update={"earning": BASE.earning.model_copy(update={"campaigns": [campaign]})}
    )
    words = explain.Names(p, "zh_CN", {})
    text = explain.describe_component("campaign:c1", "2× on category coffee_beans (x)", words)
    assert text == f"2 倍：品类 咖啡豆，渠道 App（{name}）"
    # The English form of the same component, with the campaign's English name if any.
    en = explain.describe_component("campaign:c1", "", explain.Names(p, "en", {}))
    assert en == f"2× on category Coffee beans via App ({name})"


def test_the_engines_own_text_with_parentheses_is_still_translated() -> None:
    # A component whose rule is not in the programme falls back to parsing the English.
    assert explain.describe("3× on every line (双十一 (11.11) 三倍积分)", "zh_CN") == (
        "3 倍：全部商品（双十一 (11.11) 三倍积分）"
    )


def test_a_tier_multiplier_names_the_tier_in_the_pages_language() -> None:
    p = _programme(name="x")
    zh = explain.Names(p, "zh_CN", {})
    en = explain.Names(p, "en", {})
    assert (
        explain.describe_component("tier:silver", "1.2× for tier Silver", zh) == "银卡会员 1.2 倍"
    )
    assert explain.describe_component("tier:silver", "", en) == "1.2× for tier Silver"


def test_every_breakdown_component_of_a_real_order_has_no_english_in_chinese() -> None:
    p = _programme(name="会员日 (周三)", match={"channels": ["miniprogram"]})
    order = OrderInput(
        store_code="sh1",
        channel="miniprogram",
        occurred_at=datetime(2026, 6, 10, 4, 0, tzinfo=UTC),
        amount_paid_minor=30000,
        lines=(
            LineInput(1, "B1", "coffee_beans", 1, 20000, 0),
            LineInput(2, "G1", "gift_card", 1, 10000, 0),
        ),
    )
    result = evaluate_order(p, order, EarnContext(tier_code="gold"))
    words = explain.Names(p, "zh_CN", {"sh1": "上海一店"})
    texts = [explain.describe_component(b.rule, b.description, words) for b in result.breakdown]
    assert len(texts) >= 4
    for t in texts:
        assert not re.search(r"[A-Za-z]{3,}", t.replace("App", "")), t


def test_phones_are_shown_in_national_format() -> None:
    assert display_phone("+8613812345678", masked=False) == "138 1234 5678"
    assert display_phone("+8613812345678", masked=True) == "138 **** 5678"
    assert display_phone("+442079460958", masked=True) == "+44 20 **** 0958"
    assert display_phone(None, masked=True) is None


def test_audit_changes_show_labels_money_and_masked_phones() -> None:
    rows = changes(
        None,
        {"amount_paid_minor": 123456, "phone": "+8613812345678", "status": "returned", "x_y": 1},
        locale="zh_CN",
        names={"tier": {"gold": "金卡会员"}},
    )
    assert rows == [
        ("实付金额", "", "¥1,234.56", True),
        ("手机号", "", "138 **** 5678", True),
        ("状态", "", "已退货", True),
        ("x_y", "", "1", True),
    ]
    en = changes({"tier": "base"}, {"tier": "gold"}, locale="en", names={"tier": {"gold": "Gold"}})
    assert en == [("Tier", "base", "Gold", True)]


def test_every_label_has_its_chinese() -> None:
    po = ADMIN / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as fh:
        zh = {m.id: m.string for m in read_po(fh) if m.id}
    missing = [m for m in [*labels.FIELDS.values(), *labels.VALUES.values()] if not zh.get(m)]
    assert missing == []


def test_audit_rows_of_the_merged_features_are_in_words() -> None:
    """Issue 10 item 5: a document published, a coupon batch made, a coupon issued through
    the API read as words in Chinese, template codes by their names; unknown codes stay."""
    rows = changes(
        {"kind": "habits", "version": None},
        {"kind": "habits", "version": 1},
        locale="zh_CN",
    )
    assert rows == [("类型", "签到与徽章", "签到与徽章", False), ("版本", "—", "1", True)]
    rows = changes(
        None,
        {"template": "free-tart", "kind": "generated", "requested": 200, "source": "api"},
        locale="zh_CN",
        names={"template": {"free-tart": "咖啡配蛋挞"}},
    )
    assert rows == [
        ("模板", "", "咖啡配蛋挞", True),
        ("类型", "", "生成", True),
        ("申请券码数", "", "200", True),
        ("来源", "", "API", True),
    ]
    assert changes(None, {"kind": "spaceship"}, locale="zh_CN") == [("类型", "", "spaceship", True)]


def test_every_audited_action_and_object_has_its_name() -> None:
    """Every action and object type the services write to the audit trail is offered by the
    audit filter and named on the console (base.html), so no page shows a raw action."""
    from loyalist.admin.endpoints import AUDIT_ACTIONS, AUDIT_OBJECTS

    src = Path(explain.__file__).parents[1]
    actor = r"(?:\w+\([^)]*\)|[\w.]+)"
    action = r'(?:"([a-z_.]+)"|f"([a-z_.]+)\.\{[^"]*")(?:\s+if\s+\w+\s+else\s+"([a-z_.]+)")?'
    call = re.compile(rf'audit\.record\(\s*\w+,\s*{actor},\s*{action},\s*"([a-z_]+)"')
    # the actions written from f-strings: f"journey.{pause|resume}", f"referral.{decision}"
    formatted = {
        "journey": {"journey.pause", "journey.resume"},
        "referral": {"referral.approve", "referral.reject"},
        "fraud.review": {"fraud.review.approve", "fraud.review.reject"},
    }
    actions, objects, calls, understood = set(), set(), 0, 0
    for py in src.rglob("*.py"):
        text = py.read_text(encoding="utf-8")
        calls += text.count("audit.record(")
        for m in call.finditer(text):
            understood += 1
            assert m.group(2) is None or m.group(2) in formatted, m.group(0)
            actions |= {a for a in m.group(1, 3) if a} | formatted.get(m.group(2) or "", set())
            objects.add(m.group(4))
    assert understood == calls  # every call read: a new form of call fails here
    assert len(actions) >= 45 and len(objects) >= 15
    assert actions - set(AUDIT_ACTIONS) == set()
    assert objects - set(AUDIT_OBJECTS) == set()
    base = (ADMIN / "templates" / "base.html").read_text(encoding="utf-8")
    named = set(re.findall(r'"([a-z_.]+)": _\(', base))
    assert set(AUDIT_ACTIONS) - named == set()
    assert set(AUDIT_OBJECTS) - named == set()
