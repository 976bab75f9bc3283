"""The forwarding helper: GSM codes built from the typed number; bad numbers explained."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.webui.site_support import Site, make_site
from webui.views.forwarding import NumberProblem, codes, international


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.mark.parametrize(
    ("typed", "country", "expected"),
    [
        ("+49 30 1234567", "", "+49301234567"),
        ("+49 (0)30 123-4567", "", "+49301234567"),
        ("0049/30/1234567", "", "+49301234567"),
        ("030 1234567", "49", "+49301234567"),
        ("(020) 7946 0018", "44", "+442079460018"),
        ("06 1234 5678", "39", "+390612345678"),  # Italy keeps its 0
        ("1 212 555 0100", "1", "+12125550100"),  # +1's trunk prefix is 1
        ("＋４４ ２０ ７９４６ ００１８", "", "+442079460018"),  # full-width digits
    ],
)
def test_numbers_are_put_in_international_form(typed: str, country: str, expected: str) -> None:
    assert international(typed, country) == expected


@pytest.mark.parametrize(
    ("typed", "country", "message"),
    [
        ("030 CALL ME", "49", "A phone number has no letters"),
        ("030 1234567", "", "Type the number with + and its country code"),
        ("+49 30 1234*5", "", "Only digits please"),
        ("+0 30 1234567", "", "After the + comes a country code"),
        ("+49 123", "", "That is too short"),
        ("+49 3012345678901234", "", "That is too long"),
        ("", "", "Type the number"),
    ],
)
def test_bad_numbers_are_refused_with_a_reason(typed: str, country: str, message: str) -> None:
    with pytest.raises(NumberProblem) as caught:
        international(typed, country)
    assert str(caught.value).startswith(message)


def test_the_codes_for_a_number_and_ring_time() -> None:
    table = {row.key: row for row in codes("+442079460018", 15)}
    assert [(r.activate.code, r.check and r.check.code, r.cancel.code) for r in table.values()] == [
        ("**21*+442079460018#", "*#21#", "##21#"),
        ("**61*+442079460018**15#", "*#61#", "##61#"),
        ("**62*+442079460018#", "*#62#", "##62#"),
        ("**67*+442079460018#", "*#67#", "##67#"),
        ("**004*+442079460018**15#", None, "##004#"),
    ]
    plain = table["conditional"].plain
    assert plain is not None and plain.code == "**004*+442079460018#"
    # tel: links: # escaped (else the phone cuts the code there), * and + as they are.
    assert table["no-answer"].activate.tel == "tel:**61*+442079460018**15%23"
    assert table["unconditional"].check and table["unconditional"].check.tel == "tel:*%2321%23"
    assert table["conditional"].cancel.tel == "tel:%23%23004%23"


def test_the_page_builds_the_codes(site: Site) -> None:
    html = site.html("/forwarding?number=030+123+4567&country_code=49&ring_time=25")
    links = dict(re.findall(r'<a class="code" href="([^"]+)" data-code="[a-z]+">([^<]+)</a>', html))
    assert links["tel:**61*+49301234567**25%23"] == "**61*+49301234567**25#"
    assert links["tel:**004*+49301234567**25%23"] == "**004*+49301234567**25#"
    assert links["tel:**004*+49301234567%23"] == "**004*+49301234567#"
    assert links["tel:**21*+49301234567%23"] == "**21*+49301234567#"
    assert links["tel:%23%23002%23"] == "##002#"
    assert len(links) == 16  # 5 on (+1 without ring time), 4 checks, 5 off, all off
    assert "Forwarded calls cost money" in html and "outgoing call" in html
    assert "on: **67*+49301234567#   check: *#67#   off: ##67#" in html  # the copyable text


def test_the_page_prefills_the_country_of_the_lines_and_refuses_letters(site: Site) -> None:
    html = site.html("/forwarding")
    assert 'name="country_code"' in html and 'value="49"' in html
    assert 'class="code"' not in html
    response = site.client.get("/forwarding?number=0800-FLOWERS&country_code=49&ring_time=20")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert re.search(r'<p class="error" id="number-error">A phone number has no letters', html)
    assert 'class="code"' not in html
    response = site.client.get("/forwarding?number=030+1234567&country_code=440&ring_time=20")
    assert response.status_code == 400
    assert 'id="country_code-error"' in response.get_data(as_text=True)


def test_an_unknown_ring_time_falls_back_to_20_seconds(site: Site) -> None:
    html = site.html("/forwarding?number=%2B49301234567&country_code=&ring_time=45")
    assert "**61*+49301234567**20#" in html
