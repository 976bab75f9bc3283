"""Call history: read from the database (no gateway), filters, pages of 25, bad values."""

from __future__ import annotations

import re
from html import unescape

from gateway.store import Store
from tests.unit.webui.site_support import Site

T0 = 1_764_000_000.0  # calls start one minute apart from here


def fill(db: Store) -> dict[str, int]:
    """60 calls, oldest first: numbered +4930000000..059, alternately in and out; every 3rd
    on "landline"; Alice takes the answered ones on "home"; every 10th was missed."""
    alice = db.add_member(111, 5, "Alice", "alice", ["home", "landline"], T0)
    bob = db.add_member(222, 6, "Bob", "", ["home"], T0)
    for i in range(60):
        start = T0 + 60 * i
        line = "landline" if i % 3 == 0 else "home"
        call = db.call_started(
            "in" if i % 2 == 0 else "out",
            line,
            f"sip:+49300000{i:02d}@example.net",
            f"+49300000{i:02d}",
            f"Caller {i}",
            "",
            start,
        )
        if i % 10 == 0:
            db.call_ended(call, start + 30, "missed", "nobody answered")
            continue
        db.call_answered(call, start + 2)
        member = alice if line == "home" else bob
        db.call_member(call, member.id, member.name)
        db.call_ended(call, start + 2 + 65, "answered", "remote hung up")
    return {"alice": alice.id, "bob": bob.id}


def numbers(html: str) -> list[int]:
    """The calls on the page, by their number's last two digits, in page order."""
    return [int(n) for n in re.findall(r"\+49300000(\d\d)", html)]


def test_empty_history(site: Site, db: Store) -> None:
    html = site.html("/calls")
    assert "No call yet." in html
    assert 'class="pager"' not in html


def test_pages_of_25_newest_first_with_newer_and_older_links(site: Site, db: Store) -> None:
    fill(db)
    first = site.html("/calls")
    assert numbers(first) == list(range(59, 34, -1))
    assert "60 calls" in first and "page 1 of 3" in first
    assert 'rel="prev"' not in first
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older is not None and unescape(older.group(1)) == "/calls?page=2"

    second = site.html("/calls?page=2")
    assert numbers(second) == list(range(34, 9, -1))
    assert 'rel="prev" href="/calls"' in second

    last = site.html("/calls?page=3")
    assert numbers(last) == list(range(9, -1, -1))
    assert 'rel="next"' not in last
    # Beyond the last page: the last page.
    assert numbers(site.html("/calls?page=99")) == list(range(9, -1, -1))


def test_columns(site: Site, db: Store) -> None:
    fill(db)
    html = site.html("/calls?page=3")
    row = re.search(r'<tr data-call="\d+">(?:(?!</tr>).)*\+4930000001\b.*?</tr>', html, re.S)
    assert row is not None
    text = row.group(0)
    assert "↗" in text and "Caller 1" in text  # call 1 went out
    assert "home" in text and "Alice" in text
    assert 'class="badge ok"' in text and "answered" in text
    assert "1:05" in text  # talk time
    missed = re.search(r'<tr data-call="\d+">(?:(?!</tr>).)*\+4930000000\b.*?</tr>', html, re.S)
    assert missed is not None
    assert "↘" in missed.group(0) and "missed" in missed.group(0)
    assert "—" in missed.group(0)  # nobody answered: no duration, no member


def test_filters_combine_and_pages_keep_them(site: Site, db: Store) -> None:
    ids = fill(db)
    html = site.html("/calls?line=landline&direction=in")
    # landline: i % 3 == 0; in: i even → i % 6 == 0
    assert numbers(html) == [54, 48, 42, 36, 30, 24, 18, 12, 6, 0]
    assert '<option value="landline" selected>' in html
    assert '<option value="in" selected>' in html

    html = site.html("/calls?outcome=missed")
    assert numbers(html) == [50, 40, 30, 20, 10, 0]

    html = site.html(f"/calls?member={ids['bob']}")
    assert numbers(html) == [i for i in range(59, -1, -1) if i % 3 == 0 and i % 10]

    # Alice: answered calls on home (40 - 4 missed = 36): two pages, the links keep the filter.
    html = site.html(f"/calls?member={ids['alice']}&outcome=answered")
    expected = [i for i in range(59, -1, -1) if i % 3 and i % 10]
    assert len(expected) == 36
    assert numbers(html) == expected[:25]
    older = re.search(r'rel="next" href="([^"]+)"', html)
    assert older is not None
    link = unescape(older.group(1))
    assert f"member={ids['alice']}" in link and "outcome=answered" in link and "page=2" in link
    assert numbers(site.html(link)) == expected[25:]


def test_bad_filter_values_are_explained_not_an_error(site: Site, db: Store) -> None:
    fill(db)
    html = site.html("/calls?outcome=exploded")
    assert "is not an outcome" in html
    assert len(numbers(html)) == 25  # the filter is ignored
    html = site.html("/calls?page=abc")
    assert "is not a page number" in html
    assert numbers(html)[0] == 59
    html = site.html("/calls?page=0")
    assert "is not a page number" in html
    html = site.html("/calls?member=alice&direction=sideways")
    assert "is not a member" in html and "is not a direction" in html
    # A removed line's calls are still found, and the line is offered in the filter.
    html = site.html("/calls?line=attic")
    assert "No call matches these filters." in html
    assert '<option value="attic" selected>' in html
    # The message quotes what was typed, escaped.
    html = site.html("/calls?outcome=%3Cscript%3E")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_history_works_with_the_gateway_down(site: Site, db: Store) -> None:
    # No gateway listens on the control socket in these tests at all.
    fill(db)
    assert not site.app.extensions["linegram"].settings.control_socket.exists()
    html = site.html("/calls?outcome=answered")
    assert len(numbers(html)) == 25
    assert "54 calls match" in html
