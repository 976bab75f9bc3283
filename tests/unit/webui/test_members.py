"""Members page: invitations with link, command and QR code; revoke; the members list, edit,
privacy check and remove; the gateway down."""

from __future__ import annotations

import hashlib
import re
import time

from gateway.store import Store
from tests.unit.webui.gateway_support import FakeGateway
from tests.unit.webui.site_support import Site

LINK = re.compile(r"https://t\.me/linegram_home_bot\?start=([A-Za-z0-9_-]{22})")


def invite(site: Site, lines: list[str], note: str = "") -> tuple[int, str]:
    response = site.post("/members/invite", {"lines": lines, "note": note})
    return response.status_code, response.get_data(as_text=True)


def test_invitation_shows_link_command_expiry_and_a_qr_code(
    site: Site, gateway: FakeGateway, db: Store
) -> None:
    page = site.html("/members")
    assert 'value="home"' in page and 'value="landline"' in page  # the configured lines

    status, html = invite(site, ["home"], "Grandma's phone")
    assert status == 200
    match = LINK.search(html)
    assert match is not None, html
    token = match.group(1)
    assert f'href="{match.group(0)}"' in html
    assert f"/start {token}" in html  # the command alternative
    # The QR code is an inline SVG inside <div class="qr">, no image from elsewhere.
    qr = re.search(r'<div class="qr"><svg [^>]*class="segno"[^>]*>.*?</svg></div>', html, re.S)
    assert qr is not None
    assert "<path" in qr.group(0)
    left = re.search(r'data-seconds-left="(\d+)"', html)
    assert left is not None and 290 <= int(left.group(1)) <= 300
    assert gateway.called("invitations.create") == [{"lines": ["home"], "note": "Grandma's phone"}]

    # The database knows only the token's hash; the list shows the invitation, never the token.
    (stored,) = db.invitations()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.lines == ("home",)
    listing = site.html("/members")
    assert token not in listing
    assert f'data-invitation="{stored.id}"' in listing
    assert "Grandma&#39;s phone" in listing


def test_revoke_an_invitation(site: Site, gateway: FakeGateway, db: Store) -> None:
    status, _html = invite(site, ["home", "landline"])
    assert status == 200
    (stored,) = db.invitations()
    response = site.post(f"/members/invitations/{stored.id}/revoke", {}, follow=True)
    html = response.get_data(as_text=True)
    assert "Invitation revoked" in html
    assert f'data-invitation="{stored.id}"' not in html
    assert db.invitations() == []
    record = db.invitation(stored.id)
    assert record is not None and record.revoked_at is not None

    again = site.post(f"/members/invitations/{stored.id}/revoke", {}, follow=True)
    assert "already used or revoked" in again.get_data(as_text=True)
    missing = site.post("/members/invitations/999/revoke", {}, follow=True)
    assert "does not exist" in missing.get_data(as_text=True)


def test_bad_invitations_are_refused_with_the_reason_and_nothing_created(
    site: Site, gateway: FakeGateway, db: Store
) -> None:
    status, html = invite(site, [])
    assert status == 400
    assert "Choose at least one line." in html
    status, html = invite(site, ["attic"])
    assert status == 400
    assert 'class="error"' in html
    status, html = invite(site, ["home"], "x" * 201)
    assert status == 400
    assert "At most 200 characters." in html
    assert db.invitations(include_finished=True) == []
    assert gateway.called("invitations.create") == []


def test_the_gateway_refusing_a_line_is_shown_next_to_the_lines(
    site: Site, gateway: FakeGateway, db: Store
) -> None:
    gateway.lines = ("home",)  # "landline" is configured but not running
    status, html = invite(site, ["landline"])
    assert status == 400
    assert "No line named &#39;landline&#39;." in html
    assert db.invitations(include_finished=True) == []


def test_invitation_without_a_bot_shows_the_command_only(site: Site, gateway: FakeGateway) -> None:
    gateway.bot_username = ""
    status, html = invite(site, ["home"])
    assert status == 200
    assert '<div class="qr">' not in html
    assert re.search(r"/start [A-Za-z0-9_-]{22}", html)
    assert "Home Gateway" in html


def test_members_list_with_verdicts_in_household_words(
    site: Site, gateway: FakeGateway, db: Store
) -> None:
    now = time.time()
    alice = db.add_member(111, 5, "Alice", "alice", ["home", "landline"], now)
    bob = db.add_member(222, 6, "Bob", "", ["home"], now)
    carol = db.add_member(333, 7, "Carol", "carol", ["landline"], now)
    db.update_member(alice.id, privacy="ok", privacy_checked_at=now, outgoing_method="callback")
    db.update_member(bob.id, privacy="restricted", privacy_checked_at=now)
    db.update_member(carol.id, privacy="unknown_member", privacy_checked_at=now)
    html = site.html("/members")
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r'<tr data-member="(\d+)">(.*?)</tr>', html, re.S)
    }
    assert "owner" in rows[str(alice.id)] and "@alice" in rows[str(alice.id)]
    assert "can be called" in rows[str(alice.id)]
    assert "home, landline" in rows[str(alice.id)]
    assert "callback: the gateway calls them" in rows[str(alice.id)]
    assert "owner" not in rows[str(bob.id)]
    assert "privacy settings refuse calls" in rows[str(bob.id)]
    assert "Who can call" in rows[str(bob.id)] and "Home Gateway" in rows[str(bob.id)]
    assert "does not know them yet" in rows[str(carol.id)]
    assert "send any message to Home Gateway" in rows[str(carol.id)]


def test_check_again_shows_telegrams_answer_and_stores_it(
    site: Site, gateway: FakeGateway, db: Store
) -> None:
    alice = db.add_member(111, 5, "Alice", "alice", ["home"], time.time())
    gateway.privacy = {
        "callable": False,
        "reason": "restricted",
        "message": "Alice's privacy settings do not let Home Gateway call them.",
        "guidance": ["Settings → Privacy and Security → Calls", "Peer-to-peer: Everybody"],
    }
    response = site.post(f"/members/{alice.id}/check", {}, follow=True)
    html = response.get_data(as_text=True)
    assert "do not let Home Gateway call them" in html
    assert "Peer-to-peer: Everybody" in html
    record = db.member(alice.id)
    assert record is not None and record.privacy == "restricted"
    assert record.privacy_checked_at is not None


def test_edit_member_lines_method_and_default_line(
    site: Site, gateway: FakeGateway, db: Store
) -> None:
    alice = db.add_member(111, 5, "Alice", "alice", ["home"], time.time())
    page = site.html(f"/members/{alice.id}/edit")
    assert re.search(r'<input checked[^>]*value="home"', page)
    assert not re.search(r'<input checked[^>]*value="landline"', page)

    # A default line the member does not belong to: explained, nothing saved.
    response = site.post(
        f"/members/{alice.id}/edit",
        {"lines": ["home"], "outgoing_method": "callback", "default_line": "landline"},
    )
    assert response.status_code == 400
    assert "must be one of the member&#39;s lines" in response.get_data(as_text=True)
    assert db.member(alice.id) == alice

    response = site.post(
        f"/members/{alice.id}/edit",
        {"lines": ["home", "landline"], "outgoing_method": "callback", "default_line": "landline"},
        follow=True,
    )
    assert "Alice: saved." in response.get_data(as_text=True)
    record = db.member(alice.id)
    assert record is not None
    assert record.lines == ("home", "landline")
    assert record.outgoing_method == "callback"
    assert record.default_line == "landline"

    assert site.client.get("/members/999/edit").status_code == 404


def test_remove_member(site: Site, gateway: FakeGateway, db: Store) -> None:
    alice = db.add_member(111, 5, "Alice", "alice", ["home"], time.time())
    response = site.post(f"/members/{alice.id}/remove", {}, follow=True)
    assert "Alice removed" in response.get_data(as_text=True)
    assert db.member(alice.id) is None


def test_gateway_down_members_from_the_database_invitations_need_it(site: Site, db: Store) -> None:
    alice = db.add_member(111, 5, "Alice", "alice", ["home"], time.time())
    html = site.html("/members")
    assert "The gateway is not running" in html
    assert f'data-member="{alice.id}"' in html and "Alice" in html
    assert "Invitations, privacy checks and changes need the gateway" in html

    response = site.post("/members/invite", {"lines": ["home"], "note": ""})
    assert response.status_code == 503
    assert "invitations need it" in response.get_data(as_text=True)
    assert db.invitations(include_finished=True) == []

    edit = site.post(
        f"/members/{alice.id}/edit",
        {"lines": ["landline"], "outgoing_method": "invite", "default_line": ""},
    )
    assert "only while it runs" in edit.get_data(as_text=True)
    assert db.member(alice.id) == alice
    check = site.post(f"/members/{alice.id}/check", {}, follow=True)
    assert "the check needs it" in check.get_data(as_text=True)
    remove = site.post(f"/members/{alice.id}/remove", {}, follow=True)
    assert "only while it runs" in remove.get_data(as_text=True)
    assert db.member(alice.id) is not None


def test_no_password_of_the_settings_in_the_members_pages(
    site: Site, gateway: FakeGateway, db: Store
) -> None:
    alice = db.add_member(111, 5, "Alice", "alice", ["home"], time.time())
    pages = [
        site.html("/members"),
        site.html(f"/members/{alice.id}/edit"),
        invite(site, ["home"])[1],
    ]
    for html in pages:
        assert "provider-secret-1" not in html and "ata-secret-2" not in html
