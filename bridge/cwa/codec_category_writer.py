"""Writing ``cwaCategory`` payloads: what the bridge publishes and what the simulator sends.

Section numbers (§) refer to docs/protocol.md.
"""

from __future__ import annotations

from lxml import etree  # type: ignore[import-untyped, unused-ignore]

from bridge.cwa.codec_common import (
    NOTE_INSTANCE_MASK,
    NS_CONTACTCARD,
    NS_NOTE,
    NS_STATE,
    NS_XSI,
    USER_STATE_INSTANCE_MASK,
    Element,
    sub,
)
from bridge.cwa.messages import Category, ContactCardContent, NoteContent, StateContent
from bridge.presence import Note


def write_category(parent: Element, category: Category, *, tag: str, instance_attr: str) -> Element:
    el = sub(parent, tag, name=category.name)
    if category.instance is not None:
        el.set(instance_attr, str(category.instance))
    if category.version is not None:
        el.set("version", str(category.version))
    if category.publish_time is not None:
        el.set("publishTime", category.publish_time)
    content = category.content
    if isinstance(content, StateContent):
        _write_state(el, content)
    elif isinstance(content, NoteContent):
        note = etree.SubElement(el, f"{{{NS_NOTE}}}note", nsmap={None: NS_NOTE})
        for body in content.bodies:
            sub(note, f"{{{NS_NOTE}}}body", body.text or None, type=body.kind, uri="")
    elif isinstance(content, ContactCardContent):
        card = etree.SubElement(el, f"{{{NS_CONTACTCARD}}}contactCard", nsmap={None: NS_CONTACTCARD})
        identity = sub(card, f"{{{NS_CONTACTCARD}}}identity")
        if content.display_name is not None:
            name = sub(identity, f"{{{NS_CONTACTCARD}}}name")
            sub(name, f"{{{NS_CONTACTCARD}}}displayName", content.display_name)
        if content.email is not None:
            sub(identity, f"{{{NS_CONTACTCARD}}}email", content.email)
    return el


def _write_state(parent: Element, content: StateContent) -> None:
    state = etree.SubElement(parent, f"{{{NS_STATE}}}state", nsmap={None: NS_STATE, "xsi": NS_XSI})
    if content.state_type is not None:
        state.set(f"{{{NS_XSI}}}type", content.state_type)
    if content.manual:
        state.set("manual", "true")
    if content.availability is not None:
        sub(state, f"{{{NS_STATE}}}availability", str(content.availability))
    if content.activity is not None or content.activity_custom is not None:
        activity = sub(state, f"{{{NS_STATE}}}activity", token=content.activity)
        if content.activity_custom is not None:
            sub(activity, f"{{{NS_STATE}}}custom", content.activity_custom)


def state_category(availability: int, manual: bool = True) -> Category:
    """A ``userState`` to publish (§3.7): the userState instance family, ``manual`` by default."""
    return Category(
        name="state",
        instance=USER_STATE_INSTANCE_MASK,
        content=StateContent(state_type="userState", availability=availability, manual=manual),
    )


def note_category(text: str) -> Category:
    """A personal note to publish (§3.7, §6.6); ``""`` publishes a body without text (clears it)."""
    return Category(name="note", instance=NOTE_INSTANCE_MASK, content=NoteContent((Note("personal", text),)))


__all__ = ["note_category", "state_category", "write_category"]
