"""SDP and the offer/answer model (RFC 8866 (was 4566), RFC 3264 §5-§8).

:meth:`SessionDescription.parse` reads what real peers send (CRLF or LF,
unknown attributes and lines kept in order, session- and media-level ``c=``,
several ``m=`` lines) and ``bytes(sdp)`` writes it back with CRLF, so
``SessionDescription.parse(bytes(sdp)) == sdp``.

The gateway only does G.711 audio (PCMU/PCMA, RFC 3551 static payload types
0 and 8, or a dynamic type mapped to them) plus RFC 4733 telephone-event:

* :func:`make_offer` builds our offer (UAC side, or a re-INVITE for hold);
* :func:`negotiate` answers a peer's offer (RFC 3264 §6) and tells the media
  layer what to send where (:class:`NegotiatedMedia`);
* :func:`parse_answer` reads the answer to our offer (RFC 3264 §7).

Every failure is an :class:`SdpError`; one from :func:`negotiate` means
"answer 488 Not Acceptable Here".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.errors import SdpError

__all__ = [
    "DIRECTIONS",
    "Connection",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "make_offer",
    "negotiate",
    "parse_answer",
]

MAX_SDP = 65_535  # bytes; a SIP body cannot be larger anyway
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
SUPPORTED_CODECS = {"PCMU": 0, "PCMA": 8}  # name -> RFC 3551 static payload type
DTMF_EVENTS = (0, 16)  # RFC 4733 §3.2: 0-9 * # A-D, flash
PTIME_DEFAULT = 20

# RFC 3551 §6 table 4, audio entries a peer may list without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    5: ("DVI4", 8000, 1),
    6: ("DVI4", 16000, 1),
    7: ("LPC", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, 1),
    12: ("QCELP", 8000, 1),
    13: ("CN", 8000, 1),
    14: ("MPA", 90000, 1),
    15: ("G728", 8000, 1),
    16: ("DVI4", 11025, 1),
    17: ("DVI4", 22050, 1),
    18: ("G729", 8000, 1),
}

# RFC 8866 §5: the order of session-level and media-level lines.
_SESSION_ORDER = "vosiuepcbtrzkam"
_MEDIA_ORDER = "micbka"
_LINE = re.compile(r"([a-z])=(.*)\Z", re.DOTALL)
_RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")
_SECURE_PROTOS = ("RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")


def _is_uint(text: str) -> bool:
    # str.isdigit() also accepts "²" and other digits int() rejects.
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class Connection:
    """``c=IN IP4 192.0.2.1`` (a multicast ``/ttl`` suffix stays in ``address``)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
            raise SdpError(f"malformed c= line {value!r}")
        return cls(address=parts[2], addrtype=parts[1], nettype=parts[0])

    @classmethod
    def for_address(cls, address: str) -> Connection:
        return cls(address=address, addrtype="IP6" if ":" in address else "IP4")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: ``c=IN IP4 0.0.0.0`` (RFC 3264 §8.4 still requires honouring it)."""
        return self.address == "0.0.0.0"


@dataclass(frozen=True)
class Origin:
    """``o=username sess-id sess-version IN IP4 address``."""

    username: str
    session_id: int
    session_version: int
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6 or not _is_uint(parts[1]) or not _is_uint(parts[2]):
            raise SdpError(f"malformed o= line {value!r}")
        return cls(parts[0], int(parts[1]), int(parts[2]), parts[5], parts[4], parts[3])

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]``."""

    encoding: str
    clock_rate: int
    channels: int = 1

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        parts = value.split("/")
        if len(parts) not in (2, 3) or not all(_is_uint(p.strip()) for p in parts[1:]):
            raise SdpError(f"malformed rtpmap encoding {value!r}")
        channels = int(parts[2]) if len(parts) == 3 else 1
        return cls(parts[0].strip(), int(parts[1]), channels)

    def __str__(self) -> str:
        tail = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.encoding}/{self.clock_rate}{tail}"


Attribute = tuple[str, str | None]


def _find_attr(attributes: list[Attribute], name: str) -> str | None:
    for key, value in attributes:
        if key == name:
            return value if value is not None else ""
    return None


def _own_direction(attributes: list[Attribute]) -> str | None:
    for key, value in attributes:
        if value is None and key in DIRECTIONS:
            return key
    return None


@dataclass
class MediaDescription:
    """One ``m=`` section with its ``c=``, ``a=`` and other lines.

    ``attributes`` keeps every ``a=`` line in order as ``(name, value)``,
    ``value`` None for a flag like ``a=sendrecv``.  ``other_lines`` keeps
    ``i=``, ``b=`` and ``k=`` lines as ``(type, value)``.
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: Connection | None = None
    attributes: list[Attribute] = field(default_factory=list)
    port_count: int | None = None
    other_lines: list[tuple[str, str]] = field(default_factory=list)
    # Session-level direction, filled in by SessionDescription (RFC 8866 §6.7).
    session_direction: str | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse_m_line(cls, value: str) -> MediaDescription:
        parts = value.split()
        if len(parts) < 4:
            raise SdpError(f"malformed m= line {value!r}")
        port_text, _, count_text = parts[1].partition("/")
        if not _is_uint(port_text) or int(port_text) > 65535:
            raise SdpError(f"bad port in m= line {value!r}")
        if count_text and not _is_uint(count_text):
            raise SdpError(f"bad port count in m= line {value!r}")
        return cls(
            media=parts[0],
            port=int(port_text),
            proto=parts[2],
            formats=parts[3:],
            port_count=int(count_text) if count_text else None,
        )

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        out += [f"{t}={v}" for t, v in self.other_lines if t == "i"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out += [f"{t}={v}" for t, v in self.other_lines if t != "i"]
        out += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        return out

    def attribute(self, name: str) -> str | None:
        """First value of ``a=name[:value]`` ("" for a flag), or None if absent."""
        return _find_attr(self.attributes, name)

    def rtpmap(self, fmt: str | int) -> RtpMap | None:
        """The mapping for a payload type: its ``a=rtpmap``, else the RFC 3551 static one."""
        prefix = f"{fmt} "
        for key, value in self.attributes:
            if key == "rtpmap" and value is not None and value.startswith(prefix):
                return RtpMap.parse(value[len(prefix) :].strip())
        if _is_uint(str(fmt)) and int(fmt) in STATIC_PAYLOAD_TYPES:
            return RtpMap(*STATIC_PAYLOAD_TYPES[int(fmt)])
        return None

    def fmtp(self, fmt: str | int) -> str | None:
        prefix = f"{fmt} "
        for key, value in self.attributes:
            if key == "fmtp" and value is not None and value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    @property
    def direction(self) -> str:
        """``a=sendrecv|sendonly|recvonly|inactive``, else the session's, else sendrecv."""
        return _own_direction(self.attributes) or self.session_direction or "sendrecv"

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        if value is None:
            return None
        try:
            # Some phones send "a=ptime:20.0"; RFC 8866 allows a decimal.
            return round(float(value))
        except ValueError:
            return None


@dataclass
class SessionDescription:
    """A whole SDP body (RFC 8866 §5)."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    timing: str = "0 0"
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other_lines: list[tuple[str, str]] = field(default_factory=list)  # i= u= e= p= b= r= z= k=
    version: int = 0

    def __post_init__(self) -> None:
        self._link_media()

    def _link_media(self) -> None:
        direction = _own_direction(self.attributes)
        for m in self.media:
            m.session_direction = direction

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        """Parse an SDP body; raise :class:`SdpError` naming the offending line."""
        if len(data) > MAX_SDP:
            raise SdpError(f"SDP body too large ({len(data)} bytes)")
        if isinstance(data, bytes):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise SdpError("SDP body is not valid UTF-8") from None
        else:
            text = data
        lines = [line.rstrip("\r") for line in text.split("\n")]
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise SdpError("empty SDP body")
        if lines[0] != "v=0":
            raise SdpError(f"SDP must start with v=0, got {lines[0][:40]!r}")

        origin: Origin | None = None
        session_name: str | None = None
        connection: Connection | None = None
        timing: str | None = None
        attributes: list[Attribute] = []
        other: list[tuple[str, str]] = []
        media: list[MediaDescription] = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue  # stray blank lines from sloppy peers carry nothing
            m = _LINE.match(line)
            if m is None:
                raise SdpError(f"malformed SDP line {number}: {line[:40]!r}")
            kind, value = m.group(1), m.group(2)
            if kind == "m":
                media.append(MediaDescription.parse_m_line(value))
            elif kind == "a":
                name, sep, attr_value = value.partition(":")
                attr: Attribute = (name, attr_value if sep else None)
                (media[-1].attributes if media else attributes).append(attr)
            elif kind == "c":
                if media:
                    media[-1].connection = Connection.parse(value)
                else:
                    connection = Connection.parse(value)
            elif media:
                if kind not in _MEDIA_ORDER:
                    raise SdpError(f"unexpected {kind}= line in m= section at line {number}")
                media[-1].other_lines.append((kind, value))
            elif kind not in _SESSION_ORDER:
                raise SdpError(f"unknown SDP line type {kind!r} at line {number}")
            elif kind == "o":
                if origin is not None:
                    raise SdpError(f"duplicate o= line at line {number}")
                origin = Origin.parse(value)
            elif kind == "s":
                session_name = value
            elif kind == "t":
                timing = value  # only the first t= is kept; we never schedule
            elif kind == "v":
                raise SdpError(f"duplicate v= line at line {number}")
            else:
                other.append((kind, value))
        if origin is None:
            raise SdpError("SDP has no o= line")
        return cls(
            origin=origin,
            session_name=session_name if session_name is not None else "-",
            connection=connection,
            timing=timing if timing is not None else "0 0",
            attributes=attributes,
            media=media,
            other_lines=other,
        )

    def to_bytes(self) -> bytes:
        self._link_media()
        other = sorted(self.other_lines, key=lambda kv: _SESSION_ORDER.index(kv[0]))
        before_c = [f"{t}={v}" for t, v in other if t in "iuep"]
        after_c = [f"{t}={v}" for t, v in other if t == "b"]
        after_t = [f"{t}={v}" for t, v in other if t in "rzk"]
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}", *before_c]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += [*after_c, f"t={self.timing}", *after_t]
        lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        for m in self.media:
            lines += m.lines()
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __str__(self) -> str:
        return self.to_bytes().decode("utf-8")

    @property
    def direction(self) -> str | None:
        """Session-level direction attribute, if any."""
        return _own_direction(self.attributes)

    def connection_for(self, media: MediaDescription) -> Connection | None:
        return media.connection or self.connection


@dataclass(frozen=True)
class NegotiatedMedia:
    """What the RTP layer needs after offer/answer.

    ``direction`` is ours (``sendonly`` means we send and do not expect
    audio); ``remote_direction`` is the peer's, as it declared it.
    """

    remote_address: str
    remote_port: int
    codec: str  # "PCMU" or "PCMA"
    payload_type: int
    dtmf_payload_type: int | None
    ptime: int
    direction: str
    remote_direction: str

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


# --- direction arithmetic ------------------------------------------------------

_FLAGS = {"sendrecv": (True, True), "sendonly": (True, False), "recvonly": (False, True)}


def _flags(direction: str) -> tuple[bool, bool]:
    return _FLAGS.get(direction, (False, False))


def _from_flags(send: bool, recv: bool) -> str:
    for name, flags in _FLAGS.items():
        if flags == (send, recv):
            return name
    return "inactive"


def _check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown direction {direction!r}")
    return direction


def _complement(direction: str) -> str:
    send, recv = _flags(direction)
    return _from_flags(recv, send)


def _restrict(direction: str, limit: str | None) -> str:
    if limit is None:
        return direction
    send, recv = _flags(direction)
    lsend, lrecv = _flags(_check_direction(limit))
    return _from_flags(send and lsend, recv and lrecv)


def _effective_remote_direction(m: MediaDescription, conn: Connection) -> str:
    # RFC 3264 §8.4: c=0.0.0.0 means "do not send to me": at most sendonly.
    if conn.is_hold:
        return _restrict(m.direction, "sendonly")
    return m.direction


# --- codecs and DTMF ----------------------------------------------------------


def _codec_name(name: str) -> str:
    upper = name.upper()
    if upper not in SUPPORTED_CODECS:
        raise SdpError(f"unsupported codec {name!r} (supported: PCMU, PCMA)")
    return upper


def _payload_types(m: MediaDescription) -> list[tuple[int, RtpMap | None]]:
    out: list[tuple[int, RtpMap | None]] = []
    for fmt in m.formats:
        if _is_uint(fmt) and int(fmt) <= 127:
            try:
                out.append((int(fmt), m.rtpmap(fmt)))
            except SdpError:
                out.append((int(fmt), None))  # a broken rtpmap only disqualifies its format
    return out


def _is_g711(rtpmap: RtpMap | None, wanted: set[str]) -> bool:
    return (
        rtpmap is not None
        and rtpmap.encoding.upper() in wanted
        and rtpmap.clock_rate == 8000
        and rtpmap.channels == 1
    )


def _find_dtmf(m: MediaDescription) -> int | None:
    for pt, rtpmap in _payload_types(m):
        if (
            rtpmap is not None
            and rtpmap.encoding.lower() == "telephone-event"
            and rtpmap.clock_rate == 8000
        ):
            return pt
    return None


def _parse_events(text: str | None) -> set[int]:
    # RFC 4733 §2.4.1: no "events" list means 0-15.
    if text is None:
        return set(range(16))
    events: set[int] = set()
    for item in text.replace(" ", "").split(","):
        low, _, high = item.partition("-")
        if _is_uint(low) and (not high or _is_uint(high)):
            events.update(range(int(low), int(high or low) + 1))
    return events


def _format_events(events: set[int]) -> str:
    ranges: list[str] = []
    for e in sorted(events):
        if ranges and e - 1 in events:
            start = ranges[-1].split("-")[0]
            ranges[-1] = f"{start}-{e}"
        else:
            ranges.append(str(e))
    return ",".join(ranges)


def _answer_ptime(offered: int | None) -> int:
    if offered is not None and 10 <= offered <= 60 and offered % 10 == 0:
        return offered
    return PTIME_DEFAULT


def _session(address: str, session_id: int, session_version: int) -> SessionDescription:
    conn = Connection.for_address(address)
    origin = Origin("linegram", session_id, session_version, address, conn.addrtype)
    return SessionDescription(origin=origin, connection=conn)


def _audio_attributes(
    pt: int, codec: str, dtmf_pt: int | None, dtmf_events: str, ptime: int | None, direction: str
) -> list[Attribute]:
    attrs: list[Attribute] = [("rtpmap", f"{pt} {codec}/8000")]
    if dtmf_pt is not None:
        attrs += [
            ("rtpmap", f"{dtmf_pt} telephone-event/8000"),
            ("fmtp", f"{dtmf_pt} {dtmf_events}"),
        ]
    if ptime is not None:
        attrs.append(("ptime", str(ptime)))
    attrs.append((direction, None))
    return attrs


# --- offer / answer --------------------------------------------------------


def make_offer(
    address: str,
    port: int,
    codecs: list[str],
    dtmf_pt: int | None = 101,
    ptime: int = PTIME_DEFAULT,
    direction: str = "sendrecv",
    *,
    session_id: int,
    session_version: int,
) -> SessionDescription:
    """Our offer: one audio stream with ``codecs`` in preference order (RFC 3264 §5).

    Example::

        make_offer("192.168.1.10", 40000, ["PCMA", "PCMU"], session_id=1, session_version=1)
        # m=audio 40000 RTP/AVP 8 0 101 ... a=fmtp:101 0-16, a=ptime:20, a=sendrecv
    """
    if not codecs:
        raise SdpError("no codec to offer")
    _check_direction(direction)
    names = [_codec_name(c) for c in codecs]
    pts = [SUPPORTED_CODECS[n] for n in names]
    formats = [str(pt) for pt in pts]
    attrs: list[Attribute] = [
        ("rtpmap", f"{pt} {n}/8000") for pt, n in zip(pts, names, strict=True)
    ]
    if dtmf_pt is not None:
        if not 96 <= dtmf_pt <= 127:
            raise SdpError(f"telephone-event needs a dynamic payload type, not {dtmf_pt}")
        formats.append(str(dtmf_pt))
        attrs += [
            ("rtpmap", f"{dtmf_pt} telephone-event/8000"),
            ("fmtp", f"{dtmf_pt} {_format_events(set(range(DTMF_EVENTS[0], DTMF_EVENTS[1] + 1)))}"),
        ]
    attrs += [("ptime", str(ptime)), (direction, None)]
    sdp = _session(address, session_id, session_version)
    sdp.media.append(MediaDescription("audio", port, "RTP/AVP", formats, attributes=attrs))
    return sdp


def _rejected(m: MediaDescription) -> MediaDescription:
    # RFC 3264 §6: a rejected stream keeps its m= line with port 0.
    return MediaDescription(m.media, 0, m.proto, list(m.formats) or ["0"])


def _why_unusable(offer: SessionDescription, m: MediaDescription, wanted: set[str]) -> str | None:
    label = f"m={m.media} {m.proto}"
    if m.media != "audio":
        return f"{label}: not audio"
    if m.port == 0:
        return f"{label}: stream disabled by the offerer"
    if m.proto.upper() in _SECURE_PROTOS:
        return f"{label}: secure RTP is not supported"
    if m.proto.upper() not in _RTP_PROTOS:
        return f"{label}: transport not supported"
    if offer.connection_for(m) is None:
        return f"{label}: no c= line"
    if not any(_is_g711(rtpmap, wanted) for _, rtpmap in _payload_types(m)):
        return f"{label}: none of {', '.join(sorted(wanted))} in formats {' '.join(m.formats)}"
    return None


def negotiate(
    offer: SessionDescription,
    our_codecs: list[str],
    address: str,
    port: int,
    session_id: int,
    session_version: int,
    *,
    hold_direction: str | None = None,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6) and say how to run the media.

    The first usable audio stream is accepted with the first G.711 codec in
    the *offerer's* order that is in ``our_codecs``; every other ``m=`` line
    is answered with port 0.  ``hold_direction`` (e.g. ``sendonly`` when we
    put the peer on hold) further restricts the answered direction.

    Raises:
        SdpError: no audio stream can be served; answer 488.
    """
    wanted = {_codec_name(c) for c in our_codecs}
    if hold_direction is not None:
        _check_direction(hold_direction)
    answer = _session(address, session_id, session_version)
    chosen: NegotiatedMedia | None = None
    reasons: list[str] = []
    for m in offer.media:
        why = "m=audio: an audio stream was already accepted" if chosen is not None else None
        why = why or _why_unusable(offer, m, wanted)
        if why is not None:
            reasons.append(why)
            answer.media.append(_rejected(m))
            continue
        conn = offer.connection_for(m)
        assert conn is not None  # checked by _why_unusable
        pt, rtpmap = next((pt, r) for pt, r in _payload_types(m) if _is_g711(r, wanted))
        assert rtpmap is not None
        codec = rtpmap.encoding.upper()
        dtmf_pt = _find_dtmf(m)
        events = _parse_events(m.fmtp(dtmf_pt) if dtmf_pt is not None else None)
        events &= set(range(DTMF_EVENTS[0], DTMF_EVENTS[1] + 1))
        if not events:
            dtmf_pt = None  # nothing in common; do not pretend
        remote_direction = _effective_remote_direction(m, conn)
        direction = _restrict(_complement(remote_direction), hold_direction)
        ptime = _answer_ptime(m.ptime)
        formats = [str(pt)] + ([str(dtmf_pt)] if dtmf_pt is not None else [])
        attrs = _audio_attributes(
            pt,
            codec,
            dtmf_pt,
            _format_events(events),
            ptime if m.ptime is not None else None,
            direction,
        )
        answer.media.append(MediaDescription("audio", port, m.proto, formats, attributes=attrs))
        chosen = NegotiatedMedia(
            remote_address=conn.address,
            remote_port=m.port,
            codec=codec,
            payload_type=pt,
            dtmf_payload_type=dtmf_pt,
            ptime=ptime,
            direction=direction,
            remote_direction=remote_direction,
        )
    if chosen is None:
        detail = "; ".join(reasons) if reasons else "no m= line"
        raise SdpError(f"no acceptable audio codec in offer ({detail})")
    return answer, chosen


def parse_answer(answer: SessionDescription, offer: SessionDescription) -> NegotiatedMedia:
    """Read the peer's answer to our ``offer`` (RFC 3264 §7).

    Raises:
        SdpError: the answer does not match the offer, rejected our audio
            stream, or picked a codec we did not offer.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"answer has {len(answer.media)} m= lines but the offer had {len(offer.media)}"
        )
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if ours.media != "audio" or ours.port == 0 or theirs.port == 0:
            continue
        if theirs.media != ours.media or theirs.proto.upper() != ours.proto.upper():
            raise SdpError(
                f"answer m={theirs.media} {theirs.proto} does not match "
                f"offered m={ours.media} {ours.proto}"
            )
        conn = answer.connection_for(theirs)
        if conn is None:
            raise SdpError("answer has no c= line for the audio stream")
        offered = {pt: r for pt, r in _payload_types(ours)}
        wanted = set(SUPPORTED_CODECS)
        codec_pt: int | None = None
        for pt, _ in _payload_types(theirs):
            if pt in offered and _is_g711(offered[pt], wanted):
                codec_pt = pt
                break
        if codec_pt is None:
            raise SdpError(
                f"answer picked no codec we offered (answer formats: {' '.join(theirs.formats)})"
            )
        rtpmap = offered[codec_pt]
        assert rtpmap is not None
        our_dtmf = _find_dtmf(ours)
        their_dtmf = _find_dtmf(theirs)
        remote_direction = _effective_remote_direction(theirs, conn)
        offered_direction = _own_direction(ours.attributes) or offer.direction or "sendrecv"
        direction = _restrict(offered_direction, _complement(remote_direction))
        ptime = theirs.ptime if theirs.ptime is not None else ours.ptime
        return NegotiatedMedia(
            remote_address=conn.address,
            remote_port=theirs.port,
            codec=rtpmap.encoding.upper(),
            payload_type=codec_pt,
            # The answerer may renumber telephone-event (RFC 3264 §6.1); send with its PT.
            dtmf_payload_type=their_dtmf if our_dtmf is not None else None,
            ptime=_answer_ptime(ptime),
            direction=direction,
            remote_direction=remote_direction,
        )
    raise SdpError("answer rejected the audio stream")
