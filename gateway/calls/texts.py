"""What members read: call messages, keypads and their button data.

Button data is ``<action>:<key>[:<arg>]`` where *key* names a call or a
request (a few url-safe characters), so a press finds its call even after
the message was edited or re-sent.  Telegram limits data to 64 bytes; the
bot's packing leaves 55.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.telegram.messages import Button, OutgoingMessage

KEYPAD_ROWS = ("123", "456", "789", "*0#")

KEYPAD_HINT = "Send digits (1-3 at a time, or with * and #) to press them on the call."

# Actions.
DTMF = "d"  # d:<call>:<digit>
HANGUP = "h"  # h:<call>
CALL_BACK = "cb"  # cb:<line>:<number>
TRANSFER = "t"  # t:<offer>
TOGGLE = "g"  # g:<call>  (or g:<offer> on a second-line offer)
COMPLETE = "c"  # c:<call>
REJECT = "r"  # r:<offer>
AS_TONES = "x"  # x:<offer>: the number was meant as tones
CANCEL = "n"  # n:<offer or request>
PICK_LINE = "l"  # l:<request>:<line>
DIAL = "dl"  # dl:<call>: dial what was typed on the dial pad
ERASE = "e"  # e:<call>
METHOD = "m"  # m:invite | m:callback   (/softphone)
DEFAULT_LINE = "dfl"  # dfl:<line> | dfl:* (ask)  (/softphone)


@dataclass(frozen=True)
class Press:
    action: str
    key: str
    arg: str


def parse(data: str) -> Press | None:
    action, _, rest = data.partition(":")
    if not action or not rest:
        return None
    key, _, arg = rest.partition(":")
    return Press(action, key, arg)


def duration(seconds: float) -> str:
    """``3:21`` or ``1:02:03``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def clock(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


def caller(number: str, name: str) -> str:
    if name and number and name != number:
        return f"{name} ({number})"
    return name or number or "unknown caller"


def keypad(call: str, *, hang_up: bool = True) -> list[list[Button]]:
    rows = [[Button(d, f"{DTMF}:{call}:{d}") for d in row] for row in KEYPAD_ROWS]
    if hang_up:
        rows.append([Button("Hang up", f"{HANGUP}:{call}", "/hangup")])
    return rows


def incoming(call: str, number: str, name: str, line: str) -> OutgoingMessage:
    return OutgoingMessage(
        f"📞 Incoming call from {caller(number, name)}\nLine: {line}",
        keypad(call),
        plain_hint=KEYPAD_HINT,
    )


def second_line_incoming(offer: str, number: str, name: str, line: str) -> OutgoingMessage:
    return OutgoingMessage(
        f"📞 Second line: {caller(number, name)} is calling on {line}.\n"
        "Toggle answers it and holds your current call; Transfer connects it to"
        " your current call and you drop out.",
        [
            [
                Button("Toggle", f"{TOGGLE}:{offer}", "/toggle"),
                Button("Reject", f"{REJECT}:{offer}", "/reject"),
            ],
            [Button("Transfer", f"{TRANSFER}:{offer}", "/transfer")],
        ],
    )


def second_line_offer(offer: str, display: str, tones: bool) -> OutgoingMessage:
    rows = [
        [
            Button("Transfer", f"{TRANSFER}:{offer}", "/transfer"),
            Button("Toggle", f"{TOGGLE}:{offer}", "/toggle"),
        ]
    ]
    last = [Button("Cancel", f"{CANCEL}:{offer}", "/cancel")]
    if tones:
        last.insert(0, Button("Send as tones", f"{AS_TONES}:{offer}", "/tones"))
    rows.append(last)
    return OutgoingMessage(
        f"Second line: {display}\nTransfer hands your caller to {display} and you drop out;"
        " Toggle holds your caller and dials.",
        rows,
    )


def in_call(call: str, who: str, line: str, *, held: str = "") -> OutgoingMessage:
    text = f"🟢 In call with {who}\nLine: {line}"
    rows = keypad(call, hang_up=False)
    if held:
        text += f"\nOn hold: {held}"
        rows.append(
            [
                Button("Toggle", f"{TOGGLE}:{call}", "/toggle"),
                Button("Complete", f"{COMPLETE}:{call}", "/complete"),
                Button("Transfer", f"{TRANSFER}:{call}", "/transfer"),
            ]
        )
    rows.append([Button("Hang up", f"{HANGUP}:{call}", "/hangup")])
    return OutgoingMessage(text, rows, plain_hint=KEYPAD_HINT)


def missed(number: str, name: str, line: str, at: float) -> OutgoingMessage:
    # The number rides in the button (data is at most 55 bytes): long ones get no button.
    rows = []
    if number and len(number) <= 20 and len(line) + len(number) <= 50:
        rows = [[Button("Call back", f"{CALL_BACK}:{line}:{number}", f"/call {number}")]]
    return OutgoingMessage(
        f"❌ Missed call from {caller(number, name)} at {clock(at)}\nLine: {line}", rows
    )


def dial_pad(call: str, typed: str) -> OutgoingMessage:
    rows = keypad(call, hang_up=False)
    rows.append(
        [
            Button("⌫", f"{ERASE}:{call}"),
            Button("Dial", f"{DIAL}:{call}", "/dial"),
            Button("Hang up", f"{HANGUP}:{call}", "/hangup"),
        ]
    )
    shown = typed or "…"
    return OutgoingMessage(
        f"☎️ Who should I call? Number: {shown}\nPress the digits and Dial, or send the number.",
        rows,
        plain_hint="Send the number to dial.",
    )


def pick_line(request: str, display: str, lines: list[str]) -> OutgoingMessage:
    rows = [[Button(line, f"{PICK_LINE}:{request}:{line}")] for line in lines]
    rows.append([Button("Cancel", f"{CANCEL}:{request}", "/cancel")])
    return OutgoingMessage(
        f"Which line should dial {display}?",
        rows,
        plain_hint="Reply with the line's name.",
    )


def softphone(method: str, default_line: str, lines: list[str]) -> OutgoingMessage:
    mark = {True: "● ", False: ""}
    rows = [
        [
            Button(f"{mark[method == 'invite']}Invite", f"{METHOD}:invite", "/method invite"),
            Button(
                f"{mark[method == 'callback']}Callback", f"{METHOD}:callback", "/method callback"
            ),
        ]
    ]
    if len(lines) > 1:
        rows.append(
            [Button(f"{mark[default_line == ln]}{ln}", f"{DEFAULT_LINE}:{ln}") for ln in lines]
            + [Button(f"{mark[not default_line]}Ask", f"{DEFAULT_LINE}:*")]
        )
    how = {
        "invite": "you send a number, then call me and I dial it",
        "callback": "you send a number, I call you and dial it when you answer",
    }[method]
    text = f"Softphone settings\nOutgoing calls: {method} — {how}."
    if lines:
        text += f"\nYour lines: {', '.join(lines)}"
        if len(lines) > 1:
            text += f" (default: {default_line or 'ask each time'})"
    return OutgoingMessage(text, rows)
