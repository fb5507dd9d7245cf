"""Reading ``cwaCategory`` payloads: the hot path of every presence snapshot.

Reading matches local names only, so default namespaces, prefixes, the ``https://`` rendering of the
schema namespaces and payloads with no namespace at all read the same (§8.12, §8.15).

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from itertools import chain

from bridge.cwa.codec_common import (
    NS_XSI,
    Element,
    attr,
    name_of,
    strip_prefix,
    to_bool,
    to_int,
)
from bridge.cwa.messages import (
    Category,
    CategoryContent,
    ContactCardContent,
    NoteContent,
    StateContent,
)
from bridge.presence import Note

_XSI_TYPE = f"{{{NS_XSI}}}type"

# --------------------------------------------------------------------------- reading categories
#
# Hot path: every userPresence snapshot carries every visible category of every user, and CWA resends
# unchanged categories verbatim (§5.3). Reading therefore collects the raw strings of a category into
# a tuple first and builds the (immutable) `Category` only for a tuple it has not seen recently: the
# element walk is unavoidable, but most allocations are not. The key holds every string the content
# is made of: keying on (name, instance, version, publishTime) alone would be cheaper, but a server
# that reuses a version for new content (the simulator's contactCard keeps version 1 when the name
# changes; a restarted server counts from 1 again) would then be shown stale data (bench/NOTES.md).

_CACHE: dict[tuple[object, ...], Category] = {}
_CACHE_MAX = 2048
_CACHE_ENTRY_CHARS = 2048  # bigger categories are built every time: the cache's memory stays bounded


def _weight(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, tuple):
        return sum(_weight(item) for item in value)
    return 0


def _state_type(el: Element) -> str | None:
    # xsi:type may come with either rendering of the namespace, none at all, or an odd prefix (§6.2).
    value = el.get(_XSI_TYPE)
    return attr(el, "type") if value is None else str(value)


# The payload element each readable category must have as a direct child (§6.2, §6.6, §6.7);
# `CustomNote` is the doc's publish example (§8.13), read (and republished) as `note`.
_PAYLOADS = {"state": "state", "note": "note", "customnote": "note", "contactcard": "contactCard"}
_DATA_ELEMENTS = "cwaCategory state availability activity custom note body contactCard displayName email"
_TAGS = tuple("{*}" + n for n in _DATA_ELEMENTS.split())
_TAGS_WITH_USERS = ("{*}user", *_TAGS)

# The walk dispatches on small integers: one dict lookup by the full tag string lxml hands out
# (`_CODES`, filled on first sight, bounded like `NAMES`) instead of slicing and comparing names.
_USER, _CAT, _STATE, _AVAIL, _ACTIVITY, _CUSTOM, _NOTE, _BODY, _CARD, _DISPLAY, _EMAIL = range(11)
_NO_PAYLOAD = -1  # the open category is unreadable (or none is open): skip its elements
_OTHER = 99  # not one of ours (cannot pass the filter; if it did, it would be ignored)
_CODE_OF_NAME = {name: code for code, name in enumerate(("user", *_DATA_ELEMENTS.split()))}
_PAYLOAD_CODE = {key: _CODE_OF_NAME[name] for key, name in _PAYLOADS.items()}
_CODES: dict[str, int] = {}
_CODES_MAX = 2048
_END = (None,)
_HEAD = ["name", "instance", "version", "publishTime"]  # `keys()` of a complete cwaCategory (§5.3)
_NAME_ONLY = ["name"]  # an empty category: nothing visible (§5.3)


def _code(tag: str) -> int:
    """The code of an element the `iter` filter let through (so its local name is one of ours)."""
    code = _CODE_OF_NAME.get(name_of(tag), _OTHER)
    if len(tag) <= 200:  # a hostile body must not be able to park megabytes of tags here
        if len(_CODES) >= _CODES_MAX:
            _CODES.clear()
        _CODES[tag] = code
    return code


def _category(key: tuple[object, ...]) -> Category:
    """Build (and cache) the `Category` for ``(name, instance, version, publishTime[, kind, raw…])``.

    Callers look in `_CACHE` first: the hit is the common case and worth saving a call for.
    """
    name, instance, version, publish_time = key[:4]
    category = Category(
        name=name,  # type: ignore[arg-type]  # the key's layout is built by `read_categories`
        instance=to_int(instance),  # type: ignore[arg-type]
        version=to_int(version),  # type: ignore[arg-type]
        publish_time=publish_time,  # type: ignore[arg-type]
        content=_content(key[4:]),
    )
    if _weight(key) <= _CACHE_ENTRY_CHARS:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = category
    return category


def _content(raw: tuple[object, ...]) -> CategoryContent | None:
    if not raw:
        return None
    kind = raw[0]
    if kind == _STATE:
        _, state_type, availability, token, custom, manual = raw
        custom_text = custom.strip() if isinstance(custom, str) else ""
        return StateContent(
            state_type=strip_prefix(state_type if isinstance(state_type, str) else None),
            availability=to_int(availability if isinstance(availability, str) else None),
            activity=token if isinstance(token, str) else None,
            activity_custom=custom_text or None,
            manual=to_bool(manual if isinstance(manual, str) else None, False),
        )
    if kind == _NOTE:
        _, bodies, value = raw
        assert isinstance(bodies, tuple)  # noqa: S101 - built below
        notes = tuple(Note(body_type or "personal", text or "") for body_type, text in bodies)
        if not notes and isinstance(value, str):
            notes = (Note("personal", value),)  # the doc's `<note value="…"/>` form (§8.13)
        return NoteContent(notes)
    _, display_name, email = raw
    return ContactCardContent(
        display_name=display_name.strip() or None if isinstance(display_name, str) else None,
        email=email.strip() or None if isinstance(email, str) else None,
    )


def read_categories(
    container: Element, *, users: bool = False
) -> list[tuple[Element | None, list[Category]]]:
    """Every ``cwaCategory`` below ``container``, grouped by the ``user`` element they follow.

    With ``users=False`` (selfPresence, publishSelfPresence) there is one group with owner ``None``.
    One C-filtered pass (`iter` with ``{*}`` wildcards, so any namespace or none) visits only the
    elements that carry data; everything else (calendarData, services…) is never touched from Python.

    Inside a readable category only elements after its payload (a direct child named for the
    category) count, the first ``availability``/``activity``/``displayName``/``email`` wins, and
    ``custom`` counts only as a direct child of that ``activity``.
    """
    codes = _CODES
    cache = _CACHE
    groups: list[tuple[Element | None, list[Category]]] = []
    owner: Element | None = None
    cats: list[Category] = []
    cat_el: Element | None = None  # the open cwaCategory
    c_name: str = ""  # its name, instance, version and publishTime
    c_inst: str | None = None
    c_ver: str | None = None
    c_time: str | None = None
    want = _NO_PAYLOAD  # the code of the payload the open category can have
    payload: Element | None = None  # that payload, once seen
    raw_a: str | None = None  # state: availability / card: displayName
    raw_b: str | None = None  # state: activity token / card: email
    raw_c: str | None = None  # state: activity custom text
    activity: Element | None = None
    bodies: list[tuple[str | None, str | None]] = []
    key: tuple[object, ...]

    # `None` at the end closes the last category; the close code exists once (it is hot, not a call).
    for el in chain(container.iter(*(_TAGS_WITH_USERS if users else _TAGS)), _END):
        if el is None:
            code = _USER
        else:
            tag = el.tag
            known = codes.get(tag)
            code = _code(tag) if known is None else known
        if code <= _CAT:  # user, cwaCategory or the end: the open category (if any) is complete
            if cat_el is not None:
                if payload is None:
                    key = (c_name, c_inst, c_ver, c_time)
                elif want == _STATE:
                    key = (
                        c_name,
                        c_inst,
                        c_ver,
                        c_time,
                        _STATE,
                        _state_type(payload),
                        raw_a,
                        raw_b,
                        raw_c,
                        payload.get("manual"),
                    )
                elif want == _NOTE:
                    key = (
                        c_name,
                        c_inst,
                        c_ver,
                        c_time,
                        _NOTE,
                        tuple(bodies),
                        None if bodies else payload.get("value"),
                    )
                else:
                    key = (c_name, c_inst, c_ver, c_time, _CARD, raw_a, raw_b)
                category = cache.get(key)
                cats.append(_category(key) if category is None else category)
            if code == _CAT:
                # Each lxml `get` costs about as much as walking to the element; the attribute layouts
                # CWA (and the simulator) send are read with two calls instead of four or five.
                layout = el.keys()
                if layout == _HEAD:
                    c_name, c_inst, c_ver, c_time = el.values()
                elif layout == _NAME_ONLY:
                    c_name, c_inst, c_ver, c_time = el.get("name"), None, None, None
                else:
                    get = el.get
                    c_name = get("name") or attr(el, "name") or ""
                    c_inst = get("instance")
                    if c_inst is None:
                        c_inst = get("instanceMask")  # §8.15
                    c_ver = get("version")
                    c_time = get("publishTime")
                want = _PAYLOAD_CODE.get(c_name.lower(), _NO_PAYLOAD)
                if want == _NOTE:
                    c_name = "note"
                cat_el = el
                payload = activity = raw_a = raw_b = raw_c = None
                if bodies:
                    bodies = []
            else:
                cat_el, want = None, _NO_PAYLOAD
                if owner is not None or cats:
                    groups.append((owner, cats))
                owner, cats = el, []
        elif want == _NO_PAYLOAD:
            continue
        elif payload is None:
            if code == want and el.getparent() is cat_el:
                payload = el
        elif want == _STATE:
            if code == _AVAIL:
                if raw_a is None:
                    raw_a = el.text or ""
            elif code == _ACTIVITY:
                if activity is None:
                    activity = el
                    raw_b = el.get("token")
            elif code == _CUSTOM and raw_c is None and activity is not None and el.getparent() is activity:
                raw_c = el.text or ""
        elif want == _NOTE:
            if code == _BODY:
                bodies.append((el.get("type"), el.text))
        elif code == _DISPLAY:
            if raw_a is None:
                raw_a = el.text or ""
        elif code == _EMAIL and raw_b is None:
            raw_b = el.text or ""
    return groups


def read_category(el: Element) -> Category:
    """One ``cwaCategory`` element (unknown or empty categories keep their name, ``content=None``)."""
    for _, cats in read_categories(el):
        if cats:
            return cats[0]
    return Category(name=attr(el, "name") or "")


__all__ = ["read_categories", "read_category"]
