"""Pure member rules: phone and identity normalisation.

``phonenumbers`` (its metadata is large) is imported by the first number that is not a
plain mainland mobile, not when the server starts (memory, issue 11).
"""

from __future__ import annotations

import re

IDENTITY_KINDS = ("phone", "email", "app_id", "wechat_openid", "pos_card")
CONSENT_CHANNELS = ("sms", "email", "push", "wechat")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}$")


class InvalidIdentity(ValueError):
    pass


def normalise_phone(raw: str) -> str:
    """A mainland China mobile (13812345678, +86 138 1234 5678) or any valid E.164 number.

    Returns E.164 (+8613812345678).
    """
    s = re.sub(r"[\s\-()]", "", raw)
    if _CN_MOBILE.match(s):
        return "+86" + s
    if s.startswith("0086"):
        s = "+" + s[2:]
    if not s.startswith("+"):
        raise InvalidIdentity("not a mainland China mobile number nor E.164 (+<country><number>)")
    import phonenumbers

    try:
        num = phonenumbers.parse(s, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity("not a phone number") from exc
    if not phonenumbers.is_valid_number(num):
        raise InvalidIdentity("not a valid phone number")
    if num.country_code == 86 and not _CN_MOBILE.match(str(num.national_number)):
        raise InvalidIdentity("not a mainland China mobile number")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    s = raw.strip()
    if not _EMAIL.match(s):
        raise InvalidIdentity("not an email address")
    local, domain = s.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def normalise_identity(kind: str, value: str) -> str:
    if kind not in IDENTITY_KINDS:
        raise InvalidIdentity(f"unknown identity kind; one of {', '.join(IDENTITY_KINDS)}")
    if kind == "phone":
        return normalise_phone(value)
    if kind == "email":
        return normalise_email(value)
    v = value.strip()
    if not v or len(v) > 128:
        raise InvalidIdentity("must be 1 to 128 characters")
    return v


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else "****"


def display_phone(phone: str | None, *, masked: bool) -> str | None:
    """A stored E.164 number as people write it: mainland numbers in national format
    ("+8613812345678" → "138 1234 5678", masked "138 **** 5678"), others in international
    format ("+44 20 7946 0958", masked with the same four digits hidden)."""
    if not phone:
        return phone
    import phonenumbers

    try:
        num = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return mask_phone(phone) if masked else phone
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if num.country_code == 86
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    shown = phonenumbers.format_number(num, style)
    if not masked:
        return shown
    # Hide the four digits before the last four, wherever the grouping spaces fall.
    positions = [i for i, ch in enumerate(shown) if ch.isdigit()]
    if len(positions) <= 8:
        return "****"
    hidden = set(positions[-8:-4])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(shown))


def mask_email(email: str | None) -> str | None:
    """ "zhang.wei@example.com" → "z***@example.com"."""
    if not email:
        return email
    local, at, domain = email.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "***"


def mask_birthday(birthday: str | None) -> str | None:
    """An ISO date without its year: "1990-05-17" → "****-05-17" (the month and day stay
    usable for birthday offers)."""
    if not birthday:
        return birthday
    return "****" + birthday[4:] if len(birthday) == 10 else "****"


def mask_token(value: str | None) -> str | None:
    """An openid or a card number: the first 3 and last 2 characters."""
    if not value:
        return value
    return value[:3] + "****" + value[-2:] if len(value) > 6 else "****"


# The personal identity kinds and how each is masked (app ids are the brand's own).
_IDENTITY_MASKS = {
    "phone": mask_phone,
    "email": mask_email,
    "wechat_openid": mask_token,
    "pos_card": mask_token,
}


def mask_identity(kind: str, value: str | None) -> str | None:
    mask = _IDENTITY_MASKS.get(kind)
    return mask(value) if mask is not None else value


def mask_personal(body: dict[str, object]) -> dict[str, object]:
    """A member's answer with phone, e-mail, birthday and personal identities masked
    (for callers without the personal-data permission). Nested members are masked too."""
    out: dict[str, object] = {}
    for key, value in body.items():
        if key == "phone" and isinstance(value, str):
            out[key] = mask_phone(value)
        elif key == "email" and isinstance(value, str):
            out[key] = mask_email(value)
        elif key == "birthday" and isinstance(value, str):
            out[key] = mask_birthday(value)
        elif key == "identities" and isinstance(value, list):
            out[key] = [
                {**i, "value": mask_identity(str(i.get("kind")), i.get("value"))}
                if isinstance(i, dict)
                else i
                for i in value
            ]
        elif isinstance(value, dict):
            out[key] = mask_personal(value)
        elif isinstance(value, list):
            out[key] = [mask_personal(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def mask_name(name: str | None) -> str | None:
    """ "张伟" → "张*", "Zhang Wei" → "Z***"."""
    if not name:
        return name
    return name[:1] + ("*" if len(name) <= 3 else "***")


#: Personal fields of a member as audit rows record them (masked, never in clear).
PERSONAL_FIELDS = ("phone", "email", "name", "birthday", "wechat_openid", "pos_card")


def mask(field: str, value: object) -> object:
    """``value`` of member field (or identity kind) ``field`` as an audit row keeps it:
    personal data masked, anything else unchanged."""
    if value is None:
        return None
    if field == "name":
        return mask_name(str(value))
    if field == "birthday":
        return mask_birthday(str(value))
    if field in _IDENTITY_MASKS:
        return mask_identity(field, str(value))
    return value
