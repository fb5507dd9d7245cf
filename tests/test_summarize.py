"""How one user's categories merge into what the bridge publishes (`summarize`, §5.3, §6.7).

`summarize` runs for every user in every data-channel answer, so it is written as one pass; these
tests pin the merge rules it must keep: the ``aggregateState`` wins, else the first state with an
availability, else the first state; every note body in order; the first non-empty name and email.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.cwa.messages import (
    Category,
    CategoryContent,
    ContactCardContent,
    NoteContent,
    PresenceSummary,
    StateContent,
    summarize,
)
from bridge.presence import Note


def _rules(categories: tuple[Category, ...]) -> PresenceSummary:
    """The merge rules spelled out, one rule at a time (the former implementation)."""
    states = [c.content for c in categories if isinstance(c.content, StateContent)]
    chosen = next((s for s in states if s.state_type == "aggregateState"), None)
    if chosen is None:
        chosen = next((s for s in states if s.availability is not None), states[0] if states else None)
    notes: list[Note] = []
    name: str | None = None
    email: str | None = None
    for category in categories:
        if isinstance(category.content, NoteContent):
            notes.extend(category.content.bodies)
        elif isinstance(category.content, ContactCardContent):
            name = name or category.content.display_name
            email = email or category.content.email
    return PresenceSummary(
        availability=chosen.availability if chosen else None,
        activity=(chosen.activity or chosen.activity_custom) if chosen else None,
        notes=tuple(notes),
        display_name=name,
        email=email,
    )


TEXT = st.one_of(st.none(), st.sampled_from(["", "Alice", "alice@example.org", "in-a-meeting", "Lunch"]))
STATES = st.builds(
    StateContent,
    state_type=st.one_of(st.none(), st.sampled_from(["aggregateState", "userState", "machineState", ""])),
    availability=st.one_of(st.none(), st.sampled_from([0, 3500, 6500, 9500, 15500, 18500])),
    activity=TEXT,
    activity_custom=TEXT,
    manual=st.booleans(),
)
NOTES = st.builds(
    NoteContent,
    st.lists(st.builds(Note, st.sampled_from(["personal", "OOF"]), TEXT.map(str)), max_size=3).map(tuple),
)
CARDS = st.builds(ContactCardContent, display_name=TEXT, email=TEXT)
CONTENT: st.SearchStrategy[CategoryContent | None] = st.one_of(st.none(), STATES, NOTES, CARDS)
CATEGORIES = st.lists(
    st.builds(
        Category, name=st.sampled_from(["state", "note", "contactCard", "calendarData"]), content=CONTENT
    ),
    max_size=8,
).map(tuple)


@given(categories=CATEGORIES)
def test_merge_follows_the_rules(categories: tuple[Category, ...]) -> None:
    assert summarize(categories) == _rules(categories)


def test_the_aggregate_state_wins_over_an_earlier_state_with_availability() -> None:
    summary = summarize(
        (
            Category("state", content=StateContent("userState", 3500, "on-the-phone")),
            Category("state", content=StateContent("aggregateState", 6500, None, "Presenting")),
            Category("note", content=NoteContent((Note("personal", "Back at 3"),))),
            Category("contactCard", content=ContactCardContent("", "a@example.org")),
            Category("contactCard", content=ContactCardContent("Alice", "other@example.org")),
        )
    )
    assert summary == PresenceSummary(
        6500, "Presenting", (Note("personal", "Back at 3"),), "Alice", "a@example.org"
    )


def test_without_an_availability_the_first_state_still_gives_the_activity() -> None:
    summary = summarize(
        (
            Category("state", content=StateContent("userState", None, "in-a-meeting")),
            Category("state", content=StateContent("machineState", None, "away")),
        )
    )
    assert (summary.availability, summary.activity) == (None, "in-a-meeting")


def test_no_categories_say_nothing() -> None:
    assert summarize(()) == PresenceSummary(None, None, (), None, None)
