"""Call messages: button data fits Telegram's limit and parses back."""

from __future__ import annotations

from gateway.calls import texts


def all_data(message: texts.OutgoingMessage) -> list[str]:
    return [b.data for row in message.rows for b in row]


def test_button_data_round_trips_and_fits() -> None:
    key = "AbC-_123"
    messages = [
        texts.incoming(key, "+442079460018", "Bob", "home"),
        texts.second_line_incoming(key, "+442079460018", "", "office-line"),
        texts.second_line_offer(key, "+44 20 7946 0018", tones=True),
        texts.in_call(key, "Bob", "home", held="Carol"),
        texts.missed("+442079460018", "Bob", "a" * 30, 0.0),
        texts.dial_pad(key, "0123"),
        texts.pick_line(key, "0123", ["home", "office"]),
        texts.softphone("invite", "", ["home", "office"]),
    ]
    for message in messages:
        for data in all_data(message):
            assert len(data.encode()) <= 55, data
            press = texts.parse(data)
            assert press is not None, data
    keypad = [texts.parse(d) for d in all_data(texts.incoming(key, "1", "", "home"))]
    digits = [p.arg for p in keypad if p is not None and p.action == texts.DTMF]
    assert digits == list("123456789*0#")
    assert {p.key for p in keypad if p is not None} == {key}


def test_call_back_carries_line_and_number() -> None:
    (button,) = [b for row in texts.missed("0201234", "", "home", 0.0).rows for b in row]
    press = texts.parse(button.data)
    assert press == texts.Press(texts.CALL_BACK, "home", "0201234")
    assert button.command == "/call 0201234"


def test_missed_call_without_usable_number_has_no_button() -> None:
    assert texts.missed("", "Anonymous", "home", 0.0).rows == ()
    assert texts.missed("1" * 40, "", "home", 0.0).rows == ()


def test_duration_and_caller() -> None:
    assert texts.duration(201) == "3:21"
    assert texts.duration(3723) == "1:02:03"
    assert texts.caller("+4420", "Bob") == "Bob (+4420)"
    assert texts.caller("+4420", "") == "+4420"
    assert texts.caller("", "") == "unknown caller"


def test_softphone_marks_the_current_choice() -> None:
    message = texts.softphone("callback", "office", ["home", "office"])
    labels = [b.label for row in message.rows for b in row]
    assert "● Callback" in labels and "Invite" in labels
    assert "● office" in labels and "Ask" in labels
    assert "callback" in message.text


def test_parse_rejects_garbage() -> None:
    assert texts.parse("") is None
    assert texts.parse("d") is None
    assert texts.parse(":x") is None
