"""SDP parsing and offer/answer, with offers written the way real peers send them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import SdpError
from gateway.sip.sdp import (
    Connection,
    MediaDescription,
    NegotiatedMedia,
    Origin,
    RtpMap,
    SessionDescription,
    make_offer,
    negotiate,
    parse_answer,
)

US = "192.168.1.2"
US_PORT = 40000


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


def answer(
    offer: bytes | str,
    codecs: list[str] | None = None,
    *,
    hold_direction: str | None = None,
    address: str = US,
) -> tuple[SessionDescription, NegotiatedMedia]:
    sdp = SessionDescription.parse(offer)
    return negotiate(
        sdp,
        codecs or ["PCMA", "PCMU"],
        address,
        US_PORT,
        1000,
        1,
        hold_direction=hold_direction,
    )


# --- offers as real peers send them ----------------------------------------------

HT801 = crlf("""
v=0
o=6001 8000 8000 IN IP4 192.168.1.50
s=SIP Call
c=IN IP4 192.168.1.50
t=0 0
m=audio 5004 RTP/AVP 0 8 4 18 9 97 2 123 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:4 G723/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:9 G722/8000
a=rtpmap:97 iLBC/8000
a=fmtp:97 mode=20
a=rtpmap:2 G726-32/8000
a=rtpmap:123 opus/48000/2
a=fmtp:123 maxplaybackrate=16000; sprop-maxcapturerate=16000; minptime=10; useinbandfec=1
a=ptime:20
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
""")

SPA112 = crlf("""
v=0
o=- 3486 3486 IN IP4 192.168.1.60
s=-
c=IN IP4 192.168.1.60
t=0 0
m=audio 16444 RTP/AVP 8 0 2 18 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:2 G726-32/8000
a=rtpmap:18 G729a/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30
a=sendrecv
""")

ASTERISK = crlf("""
v=0
o=- 1234567890 1234567890 IN IP4 10.0.0.5
s=Asterisk
c=IN IP4 10.0.0.5
t=0 0
m=audio 10000 RTP/AVP 0 8 3 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

FREESWITCH = crlf("""
v=0
o=FreeSWITCH 1700000000 1700000001 IN IP4 10.0.0.6
s=FreeSWITCH
c=IN IP4 10.0.0.6
t=0 0
m=audio 23456 RTP/AVP 9 0 8 101 13
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=rtcp:23457 IN IP4 10.0.0.6
""")

# baresip, with LF-only line endings to check tolerance.
BARESIP = """v=0
o=- 1523985672 2826342716 IN IP4 192.168.1.70
s=-
c=IN IP4 192.168.1.70
t=0 0
m=audio 10582 RTP/AVP 96 9 0 8 101
b=TIAS:64000
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-mux
a=sendrecv
a=label:1
"""

# sipp's built-in uac scenario, [media_ip] and [media_port] substituted.
SIPP = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

ZOIPER = crlf("""
v=0
o=Z 0 2 IN IP4 192.168.1.80
s=Z
c=IN IP4 192.168.1.80
t=0 0
m=audio 8000 RTP/AVP 106 110 98 3 0 101
a=rtpmap:106 opus/48000/2
a=fmtp:106 minptime=20; cbr=1; maxaveragebitrate=40000; useinbandfec=1
a=rtpmap:110 speex/8000
a=rtpmap:98 speex/16000
a=rtpmap:3 GSM/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
""")

WEBRTC = crlf("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Xy3q
a=ice-pwd:5cAfPq2rLbWw4dUu9x0mJ1oN
a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:126 telephone-event/8000
""")

# Linphone-style: video first, then audio.
VIDEO_AUDIO = crlf("""
v=0
o=alice 3001 3002 IN IP4 192.168.1.90
s=Talk
c=IN IP4 192.168.1.90
t=0 0
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
m=audio 7078 RTP/AVP 8 0 101
a=rtpmap:101 telephone-event/8000
""")

PEERS = {
    "ht801": HT801,
    "spa112": SPA112,
    "asterisk": ASTERISK,
    "freeswitch": FREESWITCH,
    "baresip": BARESIP.encode(),
    "sipp": SIPP,
    "zoiper": ZOIPER,
    "webrtc": WEBRTC,
    "video_audio": VIDEO_AUDIO,
}


@pytest.mark.parametrize("name", sorted(PEERS))
def test_round_trip(name: str) -> None:
    sdp = SessionDescription.parse(PEERS[name])
    assert SessionDescription.parse(bytes(sdp)) == sdp
    assert bytes(SessionDescription.parse(bytes(sdp))) == bytes(sdp)


@pytest.mark.parametrize("name", ["ht801", "spa112", "asterisk", "freeswitch", "sipp", "zoiper"])
def test_crlf_offers_reserialise_byte_identical(name: str) -> None:
    assert bytes(SessionDescription.parse(PEERS[name])) == PEERS[name]


def test_parse_ht801_fields() -> None:
    sdp = SessionDescription.parse(HT801)
    assert sdp.origin == Origin("6001", 8000, 8000, "192.168.1.50")
    assert sdp.session_name == "SIP Call"
    assert sdp.connection == Connection("192.168.1.50")
    assert len(sdp.media) == 1
    m = sdp.media[0]
    assert (m.media, m.port, m.proto) == ("audio", 5004, "RTP/AVP")
    assert m.formats == ["0", "8", "4", "18", "9", "97", "2", "123", "101"]
    assert m.rtpmap(123) == RtpMap("opus", 48000, 2)
    assert m.rtpmap("101") == RtpMap("telephone-event", 8000)
    assert m.fmtp(18) == "annexb=no"
    assert m.fmtp(0) is None
    assert (m.direction, m.ptime) == ("sendrecv", 20)
    assert m.attributes[-1] == ("sendrecv", None)


def test_answer_ht801_exact() -> None:
    sdp, media = answer(HT801)
    assert bytes(sdp) == crlf("""
v=0
o=linegram 1000 1 IN IP4 192.168.1.2
s=-
c=IN IP4 192.168.1.2
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")
    # Offerer's order wins over ours (we listed PCMA first).
    assert media == NegotiatedMedia(
        remote_address="192.168.1.50",
        remote_port=5004,
        codec="PCMU",
        payload_type=0,
        dtmf_payload_type=101,
        ptime=20,
        direction="sendrecv",
        remote_direction="sendrecv",
    )


def test_answer_spa112_echoes_ptime_30() -> None:
    sdp, media = answer(SPA112)
    assert (media.codec, media.payload_type, media.ptime) == ("PCMA", 8, 30)
    assert sdp.media[0].formats == ["8", "101"]
    assert sdp.media[0].ptime == 30


def test_answer_asterisk_with_pcma_only() -> None:
    sdp, media = answer(ASTERISK, ["PCMA"])
    assert (media.codec, media.payload_type, media.dtmf_payload_type) == ("PCMA", 8, 101)
    assert sdp.media[0].fmtp(101) == "0-16"
    assert sdp.media[0].attribute("maxptime") is None


def test_answer_freeswitch_skips_g722_and_cn() -> None:
    sdp, media = answer(FREESWITCH)
    assert (media.codec, media.remote_address, media.remote_port) == ("PCMU", "10.0.0.6", 23456)
    assert media.direction == "sendrecv"  # no direction attribute: sendrecv
    assert sdp.media[0].formats == ["0", "101"]


def test_answer_baresip_lf_offer() -> None:
    offer = SessionDescription.parse(BARESIP)
    assert offer.media[0].other_lines == [("b", "TIAS:64000")]
    assert offer.media[0].attribute("rtcp-mux") == ""
    sdp, media = answer(BARESIP)
    assert (media.codec, media.payload_type, media.remote_port) == ("PCMU", 0, 10582)
    assert b"\r\n" in bytes(sdp) and b"\n\n" not in bytes(sdp)


def test_answer_sipp_exact() -> None:
    sdp, media = answer(SIPP, ["PCMU"])
    assert bytes(sdp) == crlf("""
v=0
o=linegram 1000 1 IN IP4 192.168.1.2
s=-
c=IN IP4 192.168.1.2
t=0 0
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv
""")
    assert media == NegotiatedMedia("127.0.0.1", 6000, "PCMU", 0, None, 20, "sendrecv", "sendrecv")


def test_answer_zoiper_finds_pcmu_after_speex_opus_gsm() -> None:
    sdp, media = answer(ZOIPER)
    assert (media.codec, media.payload_type, media.dtmf_payload_type) == ("PCMU", 0, 101)
    assert media.ptime == 20
    assert sdp.media[0].ptime is None  # not offered, so not answered


def test_webrtc_savpf_offer_is_rejected() -> None:
    message = (
        "no acceptable audio codec in offer "
        "(m=audio UDP/TLS/RTP/SAVPF: secure RTP is not supported)"
    )
    with pytest.raises(SdpError, match=f"^{re.escape(message)}$"):
        answer(WEBRTC)


def test_rtp_savp_with_crypto_is_rejected() -> None:
    offer = (
        SIPP.replace(b"RTP/AVP", b"RTP/SAVP") + b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
    )
    with pytest.raises(SdpError, match=r"^no acceptable audio codec in offer \(m=audio RTP/SAVP: "):
        answer(offer)


def test_video_rejected_with_port_zero() -> None:
    sdp, media = answer(VIDEO_AUDIO)
    assert [(m.media, m.port, m.proto, m.formats) for m in sdp.media] == [
        ("video", 0, "RTP/AVP", ["96", "97"]),
        ("audio", US_PORT, "RTP/AVP", ["8", "101"]),
    ]
    assert sdp.media[0].attributes == []
    assert (media.codec, media.remote_port) == ("PCMA", 7078)
    assert b"m=video 0 RTP/AVP 96 97\r\nm=audio 40000 RTP/AVP 8 101\r\n" in bytes(sdp)


def test_second_audio_stream_rejected() -> None:
    offer = SIPP + b"m=audio 6002 RTP/AVP 8\r\n"
    sdp, media = answer(offer)
    assert [m.port for m in sdp.media] == [US_PORT, 0]
    assert media.remote_port == 6000


def test_first_audio_unusable_second_accepted() -> None:
    offer = SIPP.replace(b"RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", b"RTP/AVP 18") + (
        b"m=audio 6002 RTP/AVP 8\r\n"
    )
    sdp, media = answer(offer)
    assert [m.port for m in sdp.media] == [0, US_PORT]
    assert (media.codec, media.remote_port) == ("PCMA", 6002)


def test_no_common_codec() -> None:
    offer = SIPP.replace(b"RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", b"RTP/AVP 18 9")
    message = (
        "no acceptable audio codec in offer (m=audio RTP/AVP: none of PCMA, PCMU in formats 18 9)"
    )
    with pytest.raises(SdpError, match=f"^{re.escape(message)}$"):
        answer(offer)
    # PCMU offered but we only do PCMA.
    with pytest.raises(SdpError, match=r"none of PCMA in formats 0\)$"):
        answer(SIPP, ["PCMA"])


def test_video_only_offer() -> None:
    offer = crlf("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=video 5000 RTP/AVP 96
a=rtpmap:96 VP8/90000
""")
    with pytest.raises(
        SdpError, match=r"^no acceptable audio codec in offer \(m=video RTP/AVP: not audio\)$"
    ):
        answer(offer)


def test_offer_without_media_or_connection() -> None:
    bare = crlf("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0")
    with pytest.raises(SdpError, match=r"^no acceptable audio codec in offer \(no m= line\)$"):
        answer(bare)
    no_c = bare + b"m=audio 5000 RTP/AVP 0\r\n"
    with pytest.raises(SdpError, match=r"\(m=audio RTP/AVP: no c= line\)$"):
        answer(no_c)


# --- hold and direction ----------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "ours"),
    [
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
        ("sendrecv", "sendrecv"),
    ],
)
def test_direction_complement(offered: str, ours: str) -> None:
    offer = HT801.replace(b"a=sendrecv", f"a={offered}".encode())
    sdp, media = answer(offer)
    assert (media.remote_direction, media.direction) == (offered, ours)
    assert sdp.media[0].direction == ours
    assert sdp.media[0].attributes[-1] == (ours, None)


def test_hold_rfc2543_zero_address() -> None:
    offer = SPA112.replace(b"c=IN IP4 192.168.1.60", b"c=IN IP4 0.0.0.0")
    sdp, media = answer(offer)
    assert (media.remote_address, media.remote_direction, media.direction) == (
        "0.0.0.0",
        "sendonly",
        "recvonly",
    )
    assert media.sends is False and media.receives is True
    inactive = offer.replace(b"a=sendrecv", b"a=recvonly")
    assert answer(inactive)[1].direction == "inactive"


def test_session_level_direction_inherited() -> None:
    offer = SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    sdp = SessionDescription.parse(offer)
    assert sdp.direction == "sendonly"
    assert sdp.media[0].direction == "sendonly"
    _, media = answer(offer)
    assert media.direction == "recvonly"
    # A media-level attribute overrides the session one.
    override = offer + b"a=inactive\r\n"
    assert SessionDescription.parse(override).media[0].direction == "inactive"


@pytest.mark.parametrize(
    ("offered", "hold", "ours"),
    [
        ("sendrecv", "sendonly", "sendonly"),
        ("sendrecv", "inactive", "inactive"),
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "sendrecv", "sendonly"),
    ],
)
def test_hold_direction_combines(offered: str, hold: str, ours: str) -> None:
    offer = HT801.replace(b"a=sendrecv", f"a={offered}".encode())
    sdp, media = answer(offer, hold_direction=hold)
    assert media.direction == ours
    assert sdp.media[0].direction == ours


def test_bad_hold_direction() -> None:
    with pytest.raises(SdpError, match="^unknown direction 'hold'$"):
        answer(HT801, hold_direction="hold")


# --- payload types, DTMF, ptime ------------------------------------------------


def test_dynamic_pt_pcma() -> None:
    offer = SIPP.replace(b"RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", b"RTP/AVP 96 97") + (
        b"a=rtpmap:96 pcma/8000\r\na=rtpmap:97 telephone-event/8000\r\n"
    )
    sdp, media = answer(offer)
    assert (media.codec, media.payload_type, media.dtmf_payload_type) == ("PCMA", 96, 97)
    assert sdp.media[0].formats == ["96", "97"]
    assert sdp.media[0].rtpmap(96) == RtpMap("PCMA", 8000)
    assert sdp.media[0].fmtp(97) == "0-15"  # no fmtp in the offer means 0-15 (RFC 4733)


def test_wideband_pcma_is_not_g711() -> None:
    offer = SIPP.replace(b"RTP/AVP 0\r\na=rtpmap:0 PCMU/8000", b"RTP/AVP 96 8") + (
        b"a=rtpmap:96 PCMA/16000\r\n"
    )
    assert answer(offer)[1].payload_type == 8


def test_offer_without_telephone_event() -> None:
    sdp, media = answer(SPA112.replace(b" 101\r\n", b"\r\n"))
    assert media.dtmf_payload_type is None
    assert b"telephone-event" not in bytes(sdp)


def test_telephone_event_16000_ignored_and_events_intersected() -> None:
    offer = SIPP.replace(b"RTP/AVP 0", b"RTP/AVP 0 100 101") + (
        b"a=rtpmap:100 telephone-event/16000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-11,16,32-40\r\n"
    )
    sdp, media = answer(offer)
    assert media.dtmf_payload_type == 101
    assert sdp.media[0].fmtp(101) == "0-11,16"


@pytest.mark.parametrize(
    ("ptime", "answered", "used"),
    [("10", "10", 10), ("30", "30", 30), ("60", "60", 60), ("25", "20", 20), ("80", "20", 20)],
)
def test_ptime(ptime: str, answered: str, used: int) -> None:
    sdp, media = answer(HT801.replace(b"a=ptime:20", f"a=ptime:{ptime}".encode()))
    assert sdp.media[0].attribute("ptime") == answered
    assert media.ptime == used


def test_ipv6_offer() -> None:
    offer = crlf("""
v=0
o=- 7 7 IN IP6 2001:db8::50
s=-
c=IN IP6 2001:db8::50
t=0 0
m=audio 5004 RTP/AVP 8
a=rtpmap:8 PCMA/8000
a=sendrecv
""")
    sdp, media = answer(offer, address="2001:db8::2")
    assert media.remote_address == "2001:db8::50"
    assert sdp.origin == Origin("linegram", 1000, 1, "2001:db8::2", "IP6")
    assert bytes(sdp).startswith(b"v=0\r\no=linegram 1000 1 IN IP6 2001:db8::2\r\n")
    assert b"\r\nc=IN IP6 2001:db8::2\r\n" in bytes(sdp)


def test_media_level_connection_overrides_session() -> None:
    offer = SIPP.replace(b"a=rtpmap:0", b"c=IN IP4 10.9.9.9\r\na=rtpmap:0")
    sdp = SessionDescription.parse(offer)
    assert sdp.media[0].connection == Connection("10.9.9.9")
    assert answer(offer)[1].remote_address == "10.9.9.9"
    assert b"m=audio 6000 RTP/AVP 0\r\nc=IN IP4 10.9.9.9\r\na=rtpmap:0" in bytes(sdp)


# --- make_offer -----------------------------------------------------------------


def test_make_offer_exact() -> None:
    sdp = make_offer("192.168.1.2", 40000, ["PCMA", "PCMU"], session_id=42, session_version=3)
    assert bytes(sdp) == crlf("""
v=0
o=linegram 42 3 IN IP4 192.168.1.2
s=-
c=IN IP4 192.168.1.2
t=0 0
m=audio 40000 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")
    assert SessionDescription.parse(bytes(sdp)) == sdp


def test_make_offer_hold_ipv6_no_dtmf() -> None:
    sdp = make_offer(
        "2001:db8::2",
        4000,
        ["pcmu"],
        dtmf_pt=None,
        ptime=30,
        direction="sendonly",
        session_id=1,
        session_version=2,
    )
    assert str(sdp).splitlines()[-4:] == [
        "m=audio 4000 RTP/AVP 0",
        "a=rtpmap:0 PCMU/8000",
        "a=ptime:30",
        "a=sendonly",
    ]
    assert sdp.connection == Connection("2001:db8::2", "IP6")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codecs": ["G729"]}, "unsupported codec 'G729' (supported: PCMU, PCMA)"),
        ({"codecs": []}, "no codec to offer"),
        ({"dtmf_pt": 8}, "telephone-event needs a dynamic payload type, not 8"),
        ({"direction": "hold"}, "unknown direction 'hold'"),
    ],
)
def test_make_offer_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"codecs": ["PCMU"], "session_id": 1, "session_version": 1}
    args.update(kwargs)
    with pytest.raises(SdpError, match=f"^{re.escape(message)}$"):
        make_offer("10.0.0.1", 4000, **args)  # type: ignore[arg-type]


# --- parse_answer (UAC side) ----------------------------------------------------


def _our_offer() -> SessionDescription:
    return make_offer(US, US_PORT, ["PCMA", "PCMU"], session_id=5, session_version=1)


def test_parse_answer_from_asterisk() -> None:
    reply = crlf("""
v=0
o=- 99 99 IN IP4 10.0.0.5
s=Asterisk
c=IN IP4 10.0.0.5
t=0 0
m=audio 12000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")
    got = parse_answer(SessionDescription.parse(reply), _our_offer())
    assert got == NegotiatedMedia("10.0.0.5", 12000, "PCMU", 0, 101, 20, "sendrecv", "sendrecv")


def test_parse_answer_round_trip_with_negotiate() -> None:
    offer = make_offer(US, US_PORT, ["PCMU"], direction="sendonly", session_id=1, session_version=1)
    reply, theirs = negotiate(offer, ["PCMU", "PCMA"], "10.0.0.7", 7000, 9, 9)
    assert theirs.direction == "recvonly"
    ours = parse_answer(SessionDescription.parse(bytes(reply)), offer)
    assert ours == NegotiatedMedia("10.0.0.7", 7000, "PCMU", 0, 101, 20, "sendonly", "recvonly")


def test_parse_answer_hold_and_renumbered_dtmf() -> None:
    reply = crlf("""
v=0
o=- 1 2 IN IP4 10.0.0.8
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 9000 RTP/AVP 8 96
a=rtpmap:96 telephone-event/8000
a=ptime:40
""")
    got = parse_answer(SessionDescription.parse(reply), _our_offer())
    assert got == NegotiatedMedia("0.0.0.0", 9000, "PCMA", 8, 96, 40, "recvonly", "sendonly")


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            "m=audio 9000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
            "answer picked no codec we offered (answer formats: 18)",
        ),
        ("m=audio 0 RTP/AVP 8\r\n", "answer rejected the audio stream"),
        (
            "m=audio 9000 RTP/SAVP 8\r\n",
            "answer m=audio RTP/SAVP does not match offered m=audio RTP/AVP",
        ),
        (
            "m=audio 9000 RTP/AVP 8\r\nm=video 0 RTP/AVP 96\r\n",
            "answer has 2 m= lines but the offer had 1",
        ),
    ],
)
def test_parse_answer_errors(reply: str, message: str) -> None:
    head = "v=0\r\no=- 1 1 IN IP4 10.0.0.8\r\ns=-\r\nc=IN IP4 10.0.0.8\r\nt=0 0\r\n"
    with pytest.raises(SdpError, match=f"^{re.escape(message)}$"):
        parse_answer(SessionDescription.parse(head + reply), _our_offer())


def test_parse_answer_without_connection() -> None:
    reply = "v=0\r\no=- 1 1 IN IP4 10.0.0.8\r\ns=-\r\nt=0 0\r\nm=audio 9000 RTP/AVP 8\r\n"
    with pytest.raises(SdpError, match="^answer has no c= line for the audio stream$"):
        parse_answer(SessionDescription.parse(reply), _our_offer())


# --- parser details and errors ----------------------------------------------------


def test_parse_keeps_unknown_lines_and_attributes() -> None:
    text = crlf("""
v=0
o=- 1 1 IN IP4 10.0.0.1
s=-
i=a session
u=http://example.com/
e=nobody@example.com
p=+1 555 0100
c=IN IP4 10.0.0.1
b=CT:128
t=0 0
r=604800 3600 0 90000
a=tool:something 1.0
a=x-custom
m=audio 5000/2 RTP/AVP 0
i=audio stream
c=IN IP4 10.0.0.2
b=AS:64
k=prompt
a=rtpmap:0 PCMU/8000
a=x-foo:bar:baz
""")
    sdp = SessionDescription.parse(text)
    assert sdp.attributes == [("tool", "something 1.0"), ("x-custom", None)]
    assert sdp.other_lines == [
        ("i", "a session"),
        ("u", "http://example.com/"),
        ("e", "nobody@example.com"),
        ("p", "+1 555 0100"),
        ("b", "CT:128"),
        ("r", "604800 3600 0 90000"),
    ]
    m = sdp.media[0]
    assert (m.port, m.port_count) == (5000, 2)
    assert m.other_lines == [("i", "audio stream"), ("b", "AS:64"), ("k", "prompt")]
    assert m.attributes[-1] == ("x-foo", "bar:baz")
    assert bytes(sdp) == text


def test_ptime_decimal_and_garbage() -> None:
    m = MediaDescription("audio", 1, "RTP/AVP", ["0"], attributes=[("ptime", "20.0")])
    assert m.ptime == 20
    m.attributes = [("ptime", "soon")]
    assert m.ptime is None


def test_str_matches_bytes() -> None:
    sdp = SessionDescription.parse(SIPP)
    assert str(sdp).encode() == bytes(sdp) == sdp.to_bytes() == SIPP


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty SDP body"),
        ("\r\n\r\n", "empty SDP body"),
        ("v=1\r\n", "SDP must start with v=0, got 'v=1'"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", "SDP must start with v=0, got 'o=- 1 1 IN IP4 1.2.3.4'"),
        ("v=0\r\ns=-\r\nt=0 0\r\n", "SDP has no o= line"),
        ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n", "malformed o= line '- x 1 IN IP4 1.2.3.4'"),
        ("v=0\r\no=- 1 1 IN IP4\r\n", "malformed o= line '- 1 1 IN IP4'"),
        ("v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\n", "duplicate o= line at line 3"),
        ("v=0\r\nv=0\r\n", "duplicate v= line at line 2"),
        ("v=0\r\nhello\r\n", "malformed SDP line 2: 'hello'"),
        ("v=0\r\nX=1\r\n", "malformed SDP line 2: 'X=1'"),
        ("v=0\r\nx=1\r\n", "unknown SDP line type 'x' at line 2"),
        ("v=0\r\nc=IN IP5 1.2.3.4\r\n", "malformed c= line 'IN IP5 1.2.3.4'"),
        ("v=0\r\nc=IN IP4\r\n", "malformed c= line 'IN IP4'"),
        ("v=0\r\nm=audio 5000 RTP/AVP\r\n", "malformed m= line 'audio 5000 RTP/AVP'"),
        ("v=0\r\nm=audio 70000 RTP/AVP 0\r\n", "bad port in m= line 'audio 70000 RTP/AVP 0'"),
        ("v=0\r\nm=audio x RTP/AVP 0\r\n", "bad port in m= line 'audio x RTP/AVP 0'"),
        ("v=0\r\nm=audio 5/x RTP/AVP 0\r\n", "bad port count in m= line 'audio 5/x RTP/AVP 0'"),
        ("v=0\r\nm=audio 5 RTP/AVP 0\r\nt=0 0\r\n", "unexpected t= line in m= section at line 3"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=f"^{re.escape(message)}$"):
        SessionDescription.parse(text)


def test_parse_bad_utf8_and_too_large() -> None:
    with pytest.raises(SdpError, match="^SDP body is not valid UTF-8$"):
        SessionDescription.parse(b"v=0\r\ns=\xff\r\n")
    with pytest.raises(SdpError, match=r"^SDP body too large \(70000 bytes\)$"):
        SessionDescription.parse(b"v" * 70000)


def test_bad_rtpmap_only_disqualifies_its_format() -> None:
    offer = SIPP.replace(b"RTP/AVP 0", b"RTP/AVP 96 0") + b"a=rtpmap:96 PCMA\r\n"
    sdp = SessionDescription.parse(offer)
    with pytest.raises(SdpError, match="^malformed rtpmap encoding 'PCMA'$"):
        sdp.media[0].rtpmap(96)
    assert answer(offer)[1].payload_type == 0


def test_blank_lines_tolerated() -> None:
    sdp = SessionDescription.parse(SIPP.replace(b"t=0 0\r\n", b"t=0 0\r\n\r\n") + b"\r\n\r\n")
    assert bytes(sdp) == SIPP


@given(st.text(max_size=300))
def test_parse_only_raises_sdp_error(text: str) -> None:
    try:
        sdp = SessionDescription.parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n" + text)
    except SdpError:
        return
    assert SessionDescription.parse(bytes(sdp)) == sdp


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v=0\r\no=- ² 1 IN IP4 a\r\n", "malformed o= line '- ² 1 IN IP4 a'"),
        ("v=0\r\nm=audio ² RTP/AVP 0\r\n", "bad port in m= line 'audio ² RTP/AVP 0'"),
    ],
)
def test_unicode_digits_rejected(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=f"^{re.escape(message)}$"):
        SessionDescription.parse(text)


def test_unicode_digit_payload_type_ignored() -> None:
    offer = (
        SIPP.replace(b"RTP/AVP 0", "RTP/AVP ² 0".encode()) + "a=rtpmap:96 PCMA/８000\r\n".encode()
    )
    sdp = SessionDescription.parse(offer)
    assert sdp.media[0].rtpmap("²") is None
    with pytest.raises(SdpError, match="^malformed rtpmap encoding 'PCMA/８000'$"):
        sdp.media[0].rtpmap(96)
    assert answer(offer)[1].payload_type == 0
