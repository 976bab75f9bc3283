"""Calls: the INVITE usage of a dialog (RFC 3261 §13-§15, RFC 3264 hold).

:class:`IncomingCall` is the UAS side (ring, answer, reject, CANCEL -> 487),
:class:`OutgoingCall` the UAC side (INVITE with an SDP offer, provisional
responses and early media, digest challenges, CANCEL, ACK for 2xx).  Both
share :class:`SipCall`: BYE either way, re-INVITE hold and resume either way,
DTMF by RFC 4733 or INFO, and the media session whose 8 kHz PCM frames are
what the rest of the gateway sees.

A call never outlives its media: whatever ends the call (BYE, CANCEL, a
failed re-INVITE, RTP inactivity, no ACK) closes the RTP session and fires
``ended`` exactly once.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from gateway.errors import DigestError, SdpError, SipParseError
from gateway.media.session import MediaParams, RtpSession
from gateway.sip import sdp
from gateway.sip.dialog import CSeqOrderError, Dialog
from gateway.sip.digest import choose_challenge
from gateway.sip.dtmfinfo import make_info_dtmf, parse_info_dtmf
from gateway.sip.message import (
    Address,
    CSeq,
    Headers,
    SipRequest,
    SipResponse,
    new_branch,
    new_call_id,
    new_tag,
)
from gateway.sip.transaction import ClientTransaction, ServerTransaction
from gateway.sip.uri import SipUri

if TYPE_CHECKING:
    from gateway.sip.line import LineContext
    from gateway.sip.useragent import UserAgent

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY"


class CallState(enum.StrEnum):
    INCOMING = "incoming"  # UAS: INVITE received, not answered
    CALLING = "calling"  # UAC: INVITE sent, nothing back but 100
    RINGING = "ringing"  # 180 sent or received
    EARLY = "early"  # 183 with media
    UP = "up"
    ENDED = "ended"


class EndReason(enum.StrEnum):
    LOCAL_HANGUP = "local-hangup"
    REMOTE_HANGUP = "remote-hangup"
    CANCELLED = "cancelled"  # caller gave up before answer
    REJECTED = "rejected"  # we refused an incoming call
    BUSY = "busy"  # 486/600 from the callee
    DECLINED = "declined"  # 603
    NO_ANSWER = "no-answer"  # 408/480 or our ring timeout
    FAILED = "failed"  # any other final failure
    TIMEOUT = "timeout"  # transaction timed out
    RTP_TIMEOUT = "rtp-timeout"  # media stopped
    NO_ACK = "no-ack"  # our 2xx was never acknowledged
    MEDIA_ERROR = "media-error"  # nothing acceptable in SDP (488)


def _reason_for_status(status: int) -> EndReason:
    if status in (486, 600):
        return EndReason.BUSY
    if status == 603:
        return EndReason.DECLINED
    if status in (408, 480, 487):
        return EndReason.NO_ANSWER
    if status in (488, 606):
        return EndReason.MEDIA_ERROR
    return EndReason.FAILED


class SipCall:
    """What both directions share. Audio crosses as 8 kHz s16le PCM frames."""

    direction: Literal["in", "out"]

    def __init__(self, ua: UserAgent, line: LineContext, remote: Address) -> None:
        self.ua = ua
        self.line = line
        self.remote = remote
        self.id = secrets.token_hex(4)
        self.state = CallState.CALLING
        self.dialog: Dialog | None = None
        self.media: RtpSession | None = None
        self.negotiated: sdp.NegotiatedMedia | None = None
        self.end_reason: EndReason | None = None
        self.end_status: int | None = None  # SIP status that ended it, if any
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.on_audio: Callable[[bytes], None] | None = None
        self.on_dtmf: Callable[[str, int], None] | None = None
        self.on_state: list[Callable[[SipCall], None]] = []
        self.transport = line.transport  # "udp" | "tcp": how this call's requests travel
        self.remote_hold = False  # the peer has put us on hold
        self.local_hold = False
        self._answered = asyncio.Event()
        self._ended = asyncio.Event()
        self._session_id = secrets.randbelow(2**31)
        self._session_version = 0
        self._reinvite_pending = False  # our re-INVITE is in flight (glare -> 491)
        self._awaiting_ack_answer = False  # we offered in a 2xx; the answer comes in the ACK
        self._last_offer: sdp.SessionDescription | None = None
        self._refer_result: asyncio.Future[bool] | None = None  # our REFER's outcome
        # Set by the call layer to accept a peer's REFER; returns False to decline.
        self.on_refer: Callable[[SipUri], bool] | None = None

    # -- facts -------------------------------------------------------------

    @property
    def remote_number(self) -> str:
        return self.remote.uri.user or ""

    @property
    def remote_name(self) -> str:
        return self.remote.display_name or ""

    @property
    def codec(self) -> str | None:
        return self.negotiated.codec if self.negotiated else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.direction} {self.remote.uri} {self.state}>"

    # -- waiting -------------------------------------------------------------

    async def wait_answered(self, timeout: float | None = None) -> None:
        """Return once the call is up; raise ``ConnectionError`` if it ended instead."""
        answered = asyncio.ensure_future(self._answered.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            done, _ = await asyncio.wait(
                {answered, ended}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
        finally:
            answered.cancel()
            ended.cancel()
        if not done:
            raise TimeoutError(f"call {self.id} not answered within {timeout} s")
        if not self._answered.is_set():
            raise ConnectionError(f"call {self.id} ended before answer: {self.end_reason}")

    async def wait_ended(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ended.wait(), timeout)

    @property
    def is_up(self) -> bool:
        return self.state is CallState.UP

    @property
    def is_ended(self) -> bool:
        return self.state is CallState.ENDED

    # -- audio and DTMF ----------------------------------------------------

    def write_audio(self, pcm: bytes) -> None:
        if self.media is not None and self.state is not CallState.ENDED:
            self.media.write_audio(pcm)

    async def send_dtmf(self, digits: str, duration_ms: int = 160) -> None:
        """Send ``digits`` by RFC 4733, or by INFO (line setting, or no telephone-event)."""
        for digit in digits.upper():
            if self.state is not CallState.UP:
                return
            use_rtp = (
                self.line.dtmf == "rfc4733"
                and self.media is not None
                and self.negotiated is not None
                and self.negotiated.dtmf_payload_type is not None
            )
            if use_rtp:
                assert self.media is not None
                self.media.send_dtmf(digit, duration_ms)
                # Keep digits apart: event duration plus the end packets and a gap.
                await asyncio.sleep(duration_ms / 1000 + 0.1)
            else:
                content_type, body = make_info_dtmf(digit, duration_ms)
                await self._in_dialog_request("INFO", body=body, content_type=content_type)

    def _deliver_audio(self, pcm: bytes) -> None:
        if self.on_audio is not None:
            self.on_audio(pcm)

    def _deliver_dtmf(self, digit: str, duration: int) -> None:
        log.info("call %s: dtmf digit=%s duration=%d", self.id, digit, duration)
        if self.on_dtmf is not None:
            self.on_dtmf(digit, duration)

    # -- media -----------------------------------------------------------------

    async def _open_media(self) -> RtpSession:
        if self.media is None:
            self.media = await self.ua.open_media()
            self.media.on_audio = self._deliver_audio
            self.media.on_dtmf = self._deliver_dtmf
            self.media.on_timeout = self._on_rtp_timeout
        return self.media

    def _apply_media(self, negotiated: sdp.NegotiatedMedia) -> None:
        self.negotiated = negotiated
        self.remote_hold = negotiated.remote_direction in ("sendonly", "inactive")
        if self.media is None:
            return
        direction = negotiated.direction
        if self.local_hold:
            direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
        self.media.configure(
            MediaParams(
                remote=(negotiated.remote_address, negotiated.remote_port)
                if negotiated.remote_port
                else None,
                codec=negotiated.codec,
                payload_type=negotiated.payload_type,
                dtmf_payload_type=negotiated.dtmf_payload_type,
                ptime=negotiated.ptime,
                direction=direction,
            )
        )

    def _our_offer(self, direction: str = "sendrecv") -> bytes:
        assert self.media is not None
        self._session_version += 1
        address = self.ua.media_address_for(self.line, self.remote.uri)
        offer = sdp.make_offer(
            address,
            self.media.local_address[1],
            list(self.line.codecs),
            dtmf_pt=101,
            ptime=self.ua.ptime,
            direction=direction,
            session_id=self._session_id,
            session_version=self._session_version,
        )
        self._last_offer = offer
        return bytes(offer)

    def _parse_answer(self, body: bytes) -> sdp.NegotiatedMedia:
        """Read the peer's answer to our last offer; raises SdpError."""
        if self._last_offer is None:
            raise SdpError("an SDP answer arrived but we made no offer")
        return sdp.parse_answer(sdp.SessionDescription.parse(body), self._last_offer)

    def _answer_to(self, offer_body: bytes, hold_direction: str | None = None) -> bytes:
        """Negotiate an incoming offer; raises SdpError (-> 488)."""
        assert self.media is not None
        offer = sdp.SessionDescription.parse(offer_body)
        self._session_version += 1
        answer, negotiated = sdp.negotiate(
            offer,
            list(self.line.codecs),
            self.ua.media_address_for(self.line, self.remote.uri),
            self.media.local_address[1],
            self._session_id,
            self._session_version,
            hold_direction=hold_direction,
        )
        self._apply_media(negotiated)
        return bytes(answer)

    def _on_rtp_timeout(self) -> None:
        if self.state is CallState.UP:
            log.warning("call %s: no RTP for %.0f s, ending it", self.id, self.ua.rtp_timeout)
            self.ua.spawn(self._hang_up_with(EndReason.RTP_TIMEOUT))

    # -- ending ------------------------------------------------------------

    def _set_state(self, state: CallState) -> None:
        if self.state is state or self.state is CallState.ENDED:
            return
        self.state = state
        if state is CallState.UP:
            self.answered_at = time.time()
            self._answered.set()
        for callback in list(self.on_state):
            try:
                callback(self)
            except Exception:
                log.exception("call %s: state callback failed", self.id)

    def _finish(self, reason: EndReason, status: int | None = None) -> None:
        if self.state is CallState.ENDED:
            return
        self.end_reason = reason
        self.end_status = status
        self.ended_at = time.time()
        if self.media is not None:
            self.media.close()
        log.info(
            "call %s ended reason=%s status=%s duration=%.1f",
            self.id,
            reason,
            status,
            (self.ended_at - self.answered_at) if self.answered_at else 0.0,
        )
        self._set_state(CallState.ENDED)
        self._ended.set()
        self.ua.forget(self)

    async def hang_up(self) -> None:
        """End the call from our side, whatever its state."""
        await self._hang_up_with(EndReason.LOCAL_HANGUP)

    async def _hang_up_with(self, reason: EndReason) -> None:
        raise NotImplementedError

    async def _send_bye(self, reason: EndReason) -> None:
        if self.dialog is None:
            self._finish(reason)
            return
        self._finish(reason)
        try:
            await self._in_dialog_request("BYE", force=True)
        except Exception as exc:  # the call is over for us whatever the peer says
            log.info("call %s: BYE not confirmed: %s", self.id, exc)

    # -- in-dialog requests we send --------------------------------------------

    async def _in_dialog_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        force: bool = False,
        extra: list[tuple[str, str]] | None = None,
    ) -> SipResponse | None:
        """Send a request inside the dialog and return its final response (None on timeout)."""
        if self.dialog is None or (self.state is CallState.ENDED and not force):
            return None
        request, next_hop = self.dialog.create_request(
            method,
            self.ua.via_for(self.line, self.dialog.remote_target, transport=self.transport),
            body=body,
            content_type=content_type,
            extra=extra,
            user_agent=self.ua.user_agent,
        )
        return await self.ua.request_with_auth(self.line, request, next_hop)

    async def hold(self) -> bool:
        """Put the peer on hold (re-INVITE with a=sendonly); True if accepted."""
        return await self._reinvite_direction(hold=True)

    async def resume(self) -> bool:
        return await self._reinvite_direction(hold=False)

    async def _reinvite_direction(self, *, hold: bool) -> bool:
        if self.state is not CallState.UP or self.dialog is None or self.media is None:
            return False
        if self._reinvite_pending:
            return False
        self.local_hold = hold
        direction = "sendonly" if hold else "sendrecv"
        body = self._our_offer(direction)
        self._reinvite_pending = True
        try:
            response = await self._in_dialog_request(
                "INVITE", body=body, content_type="application/sdp"
            )
        finally:
            self._reinvite_pending = False
        if response is None or not 200 <= response.status < 300:
            status = response.status if response else None
            log.info("call %s: re-INVITE (%s) refused: %s", self.id, direction, status)
            if status in (408, 481) or response is None:
                # RFC 3261 §14.1: the dialog is gone.
                await self._hang_up_with(EndReason.FAILED)
            return False
        try:
            negotiated = self._parse_answer(response.body)
            self._apply_media(negotiated)
        except SdpError as exc:
            log.warning("call %s: bad SDP answer to re-INVITE: %s", self.id, exc)
        return True

    # -- in-dialog requests we receive ------------------------------------------

    def handle_in_dialog(self, request: SipRequest, tx: ServerTransaction) -> None:
        assert self.dialog is not None
        try:
            self.dialog.check_remote_cseq(request)
        except CSeqOrderError:
            self.ua.respond(tx, request, 500, "CSeq Out Of Order")
            return
        method = request.method
        if method == "BYE":
            self.ua.respond(tx, request, 200)
            self._finish(EndReason.REMOTE_HANGUP)
        elif method == "INVITE":
            self.ua.spawn(self._on_reinvite(request, tx))
        elif method == "UPDATE":
            self._on_update(request, tx)
        elif method == "INFO":
            self._on_info(request, tx)
        elif method == "OPTIONS":
            self.ua.respond(
                tx, request, 200, headers=[("Allow", ALLOW), ("Accept", "application/sdp")]
            )
        elif method == "REFER":
            self._on_refer(request, tx)
        elif method == "NOTIFY":
            self._on_notify(request, tx)
        else:
            self.ua.respond(tx, request, 405, headers=[("Allow", ALLOW)])

    async def _on_reinvite(self, request: SipRequest, tx: ServerTransaction) -> None:
        if self._reinvite_pending:
            self.ua.respond(tx, request, 491)  # glare, RFC 3261 §14.2
            return
        assert self.dialog is not None
        self.dialog.refresh_target(request)
        hold_direction = "sendonly" if self.local_hold else None
        try:
            if request.body:
                body = self._answer_to(request.body, hold_direction)
            else:
                # Offer-less re-INVITE: we offer in the 200, the answer comes in the ACK.
                body = self._our_offer("sendonly" if self.local_hold else "sendrecv")
                self._awaiting_ack_answer = True
        except SdpError as exc:
            self.ua.respond(tx, request, 488, headers=[("Warning", f'304 linegram "{exc}"')])
            return
        log.info("call %s: re-INVITE, peer %s", self.id, "holds" if self.remote_hold else "active")
        self.ua.respond(
            tx,
            request,
            200,
            to_tag=self.dialog.local_tag,
            headers=self._contact_headers(),
            body=body,
            content_type="application/sdp",
        )

    def _on_update(self, request: SipRequest, tx: ServerTransaction) -> None:
        assert self.dialog is not None
        self.dialog.refresh_target(request)
        if request.body:
            try:
                body = self._answer_to(request.body)
            except SdpError as exc:
                self.ua.respond(tx, request, 488, headers=[("Warning", f'304 linegram "{exc}"')])
                return
            self.ua.respond(
                tx,
                request,
                200,
                headers=self._contact_headers(),
                body=body,
                content_type="application/sdp",
            )
        else:
            self.ua.respond(tx, request, 200, headers=self._contact_headers())

    def _on_info(self, request: SipRequest, tx: ServerTransaction) -> None:
        parsed = parse_info_dtmf(request.content_type, request.body)
        if parsed is None:
            # Unknown INFO packages are accepted and ignored (RFC 6086 would say 469).
            self.ua.respond(tx, request, 200)
            return
        self.ua.respond(tx, request, 200)
        self._deliver_dtmf(*parsed)

    # -- transfer (RFC 3515 REFER, RFC 3420 sipfrag) ------------------------------

    async def refer(self, target: SipUri, timeout: float = 30.0) -> bool:
        """Ask the peer to call ``target`` instead of us (blind transfer).

        True once the peer reports (by NOTIFY) that the new call was
        answered; False if it refuses the REFER, the new call fails, or
        nothing final is heard within ``timeout`` seconds.  The caller hangs
        up this call afterwards.
        """
        if self.state is not CallState.UP or self._refer_result is not None:
            return False
        self._refer_result = asyncio.get_running_loop().create_future()
        try:
            contact = self.ua.contact_for(self.line, self.remote.uri, self.transport)
            response = await self._in_dialog_request(
                "REFER",
                extra=[("Refer-To", str(Address(uri=target))), ("Referred-By", str(contact))],
            )
            if response is None or response.status not in (200, 202):
                log.info("call %s: REFER refused: %s", self.id, response and response.status)
                return False
            return await asyncio.wait_for(self._refer_result, timeout)
        except TimeoutError:
            return False
        finally:
            self._refer_result = None

    def _on_refer(self, request: SipRequest, tx: ServerTransaction) -> None:
        values = request.headers.get_all("Refer-To")
        if len(values) != 1:
            self.ua.respond(tx, request, 400, "Exactly One Refer-To Required")
            return
        try:
            target = Address.parse(values[0]).uri
        except SipParseError:
            self.ua.respond(tx, request, 400, "Bad Refer-To")
            return
        if self.on_refer is None or not target.is_sip or not self.on_refer(target):
            self.ua.respond(tx, request, 603, "Decline")
            return
        self.ua.respond(tx, request, 202)
        self.refer_progress(100, "Trying")

    def refer_progress(self, status: int, reason: str) -> None:
        """Tell the peer how the call it asked for is going (NOTIFY with a sipfrag).

        A status of 200 or more ends the implicit subscription.
        """
        state = "active;expires=60" if status < 200 else "terminated;reason=noresource"
        body = f"SIP/2.0 {status} {reason}\r\n".encode("ascii", "replace")
        self.ua.spawn(
            self._in_dialog_request(
                "NOTIFY",
                body=body,
                content_type="message/sipfrag;version=2.0",
                extra=[("Event", "refer"), ("Subscription-State", state)],
            )
        )

    def _on_notify(self, request: SipRequest, tx: ServerTransaction) -> None:
        self.ua.respond(tx, request, 200)
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer" or self._refer_result is None or self._refer_result.done():
            return
        status_line = request.body.split(b"\n", 1)[0].decode("ascii", "replace").split()
        if len(status_line) >= 2 and status_line[1].isdigit() and len(status_line[1]) == 3:
            status = int(status_line[1])
            if status >= 200:
                self._refer_result.set_result(status < 300)

    def handle_ack(self, request: SipRequest) -> None:
        """ACK for our 2xx (to an INVITE or a re-INVITE)."""
        if self._awaiting_ack_answer and request.body:
            self._awaiting_ack_answer = False
            try:
                negotiated = self._parse_answer(request.body)
                self._apply_media(negotiated)
            except SdpError as exc:
                log.warning("call %s: bad SDP in ACK: %s", self.id, exc)
                self.ua.spawn(self._hang_up_with(EndReason.MEDIA_ERROR))

    def _contact_headers(self) -> list[tuple[str, str]]:
        contact = self.ua.contact_for(self.line, self.remote.uri, self.transport)
        return [("Contact", str(contact)), ("Allow", ALLOW)]


class IncomingCall(SipCall):
    """The UAS side: an INVITE that reached us from a line."""

    direction: Literal["in", "out"] = "in"

    def __init__(
        self,
        ua: UserAgent,
        line: LineContext,
        request: SipRequest,
        tx: ServerTransaction,
        source: tuple[str, int],
    ) -> None:
        super().__init__(ua, line, request.from_addr)
        self.invite = request
        self.tx = tx
        self.source = source
        # Our requests in this dialog travel the way the INVITE came (§18.2.2).
        self.transport = "tcp" if request.top_via.transport == "TCP" else "udp"
        self.local_tag = new_tag()
        self.state = CallState.INCOMING
        self.dialed = request.uri.user or ""
        self._final_sent = False
        self._answer_body: bytes | None = None

    async def prepare(self) -> int | None:
        """Open media and negotiate the offer; return an error status (488) or None."""
        await self._open_media()
        if self.invite.body:
            try:
                self._answer_body = self._answer_to(self.invite.body)
            except SdpError as exc:
                log.info("call %s: offer refused: %s", self.id, exc)
                return 488
        return None

    def ring(self) -> None:
        """Send 180 Ringing (the caller hears their own ringback)."""
        if self.state is not CallState.INCOMING:
            return
        self._provisional(180)
        self._set_state(CallState.RINGING)

    def early_media(self) -> None:
        """Send 183 Session Progress with our answer, so audio flows before the answer."""
        if self.state not in (CallState.INCOMING, CallState.RINGING) or self._answer_body is None:
            return
        self._provisional(183, body=self._answer_body)
        self._set_state(CallState.EARLY)

    def _provisional(self, status: int, body: bytes = b"") -> None:
        self.ua.respond(
            self.tx,
            self.invite,
            status,
            to_tag=self.local_tag,
            headers=self._contact_headers(),
            body=body,
            content_type="application/sdp" if body else None,
        )

    def answer(self) -> None:
        """Send 200 OK; the call is up (the ACK is awaited by the transaction layer)."""
        if self._final_sent or self.state is CallState.ENDED:
            return
        body = self._answer_body
        if body is None:
            # Delayed offer: our offer goes in the 200, the answer comes in the ACK.
            body = self._our_offer()
            self._awaiting_ack_answer = True
        response = self.ua.respond(
            self.tx,
            self.invite,
            200,
            to_tag=self.local_tag,
            headers=self._contact_headers(),
            body=body,
            content_type="application/sdp",
        )
        self._final_sent = True
        contact = self.ua.contact_for(self.line, self.remote.uri, self.transport)
        self.dialog = Dialog.from_uas(self.invite, response, contact)
        self.ua.bind_dialog(self)
        self._set_state(CallState.UP)

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        if self._final_sent or self.state is CallState.ENDED:
            return
        self._final_sent = True
        self.ua.respond(self.tx, self.invite, status, reason, to_tag=self.local_tag)
        self._finish(EndReason.REJECTED, status)

    def on_cancel(self) -> None:
        """CANCEL matched our INVITE transaction: 487 and the call is gone (no ghost)."""
        if self._final_sent:
            return
        self._final_sent = True
        self.ua.respond(self.tx, self.invite, 487, to_tag=self.local_tag)
        self._finish(EndReason.CANCELLED, 487)

    def on_ack_timeout(self) -> None:
        """Our 2xx was never acknowledged: RFC 3261 §13.3.1.4 says end with BYE."""
        self.ua.spawn(self._send_bye(EndReason.NO_ACK))

    async def _hang_up_with(self, reason: EndReason) -> None:
        if self.state is CallState.ENDED:
            return
        if not self._final_sent:
            self._final_sent = True
            status = 480 if reason is EndReason.LOCAL_HANGUP else 500
            self.ua.respond(self.tx, self.invite, status, to_tag=self.local_tag)
            self._finish(reason, status)
            return
        await self._send_bye(reason)


class OutgoingCall(SipCall):
    """The UAC side: we INVITE someone through a line."""

    direction: Literal["in", "out"] = "out"

    def __init__(
        self,
        ua: UserAgent,
        line: LineContext,
        target: SipUri,
        from_addr: Address,
        to_uri: SipUri | None = None,
    ) -> None:
        # `target` is the Request-URI; `to_uri` the party as dialled, when the
        # request is retargeted (a registered ATA is reached at its Contact).
        super().__init__(ua, line, Address(uri=to_uri or target))
        self.target = target
        self.transport = ua.transport_for(line, target)
        self.from_addr = from_addr
        self.call_id = new_call_id()
        self.local_tag = new_tag()
        self.cseq = 1
        self.invite: SipRequest | None = None
        self.invite_tx: ClientTransaction | None = None
        self.next_hop: SipUri = target
        self._auth_attempts = 0
        self._cancel_requested = False
        self._early_dialog: Dialog | None = None

    async def start(self) -> None:
        """Open media and send the INVITE."""
        await self._open_media()
        self.next_hop = self.ua.next_hop_for(self.line, self.target)
        self._send_invite(auth=[])

    def _send_invite(self, auth: list[tuple[str, str]]) -> None:
        headers = Headers()
        headers.add(
            "Via",
            str(
                self.ua.via_for(
                    self.line, self.next_hop, branch=new_branch(), transport=self.transport
                )
            ),
        )
        headers.add("Max-Forwards", "70")
        headers.add(
            "From",
            str(Address(self.from_addr.uri, self.from_addr.display_name, {"tag": self.local_tag})),
        )
        headers.add("To", str(Address(uri=self.remote.uri)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", str(CSeq(self.cseq, "INVITE")))
        for route in self.ua.routes_for(self.line):
            headers.add("Route", str(route))
        headers.add("Contact", str(self.ua.contact_for(self.line, self.target, self.transport)))
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", self.ua.user_agent)
        for name, value in auth:
            headers.add(name, value)
        headers.add("Content-Type", "application/sdp")
        body = self._our_offer() if self.invite is None else self.invite.body
        self.invite = SipRequest("INVITE", self.target, headers, body)
        self.invite_tx = self.ua.send_invite(self)

    # -- responses to our INVITE -----------------------------------------------

    def on_response(self, response: SipResponse, tx: ClientTransaction) -> None:
        if tx is not self.invite_tx:
            return
        status = response.status
        if status < 200:
            self._on_provisional(response)
        elif status < 300:
            self._on_success(response)
        elif (
            status in (401, 407)
            and self.state is not CallState.ENDED
            and not self._cancel_requested
        ):
            self._on_challenge(response)
        else:
            if self.state is CallState.ENDED:
                return
            if self._cancel_requested and status == 487:
                self._finish(EndReason.CANCELLED, status)
            else:
                log.info("call %s: %s %s", self.id, status, response.reason)
                self._finish(_reason_for_status(status), status)

    def _on_provisional(self, response: SipResponse) -> None:
        if self.state is CallState.ENDED or response.status == 100:
            return
        if self._cancel_requested:
            self.ua.cancel(self.invite_tx)
        if response.body and response.content_type == "application/sdp":
            self._take_answer(response)
            self._set_state(CallState.EARLY)
        elif self.state in (CallState.CALLING,):
            self._set_state(CallState.RINGING)

    def _on_success(self, response: SipResponse) -> None:
        assert self.invite is not None
        if self.dialog is not None:
            if self.dialog.remote_tag == (response.to_addr.tag or ""):
                # A retransmitted 2xx: our ACK was lost, send it again (§13.2.2.4).
                self._send_ack(response)
            else:
                # A second fork answered too: acknowledge it, then end it (§13.2.2.4).
                self.ua.spawn(self._end_extra_fork(response))
            return
        self.dialog = Dialog.from_uac(self.invite, response)
        self.ua.bind_dialog(self)
        self._send_ack(response)
        if self.state is CallState.ENDED or self._cancel_requested:
            # 2xx crossed our CANCEL (or we gave up): acknowledge, then BYE.
            self.ua.spawn(self._send_bye(self.end_reason or EndReason.LOCAL_HANGUP))
            return
        if response.body:
            self._take_answer(response)
        elif self.negotiated is None:
            log.warning("call %s: 2xx without SDP answer", self.id)
            self.ua.spawn(self._send_bye(EndReason.MEDIA_ERROR))
            return
        self._set_state(CallState.UP)

    def _take_answer(self, response: SipResponse) -> None:
        try:
            negotiated = self._parse_answer(response.body)
        except SdpError as exc:
            log.warning("call %s: unusable SDP answer: %s", self.id, exc)
            return
        self._apply_media(negotiated)

    async def _end_extra_fork(self, response: SipResponse) -> None:
        assert self.invite is not None
        fork = Dialog.from_uac(self.invite, response)
        self._send_ack(response, fork)
        bye, next_hop = fork.create_request(
            "BYE",
            self.ua.via_for(self.line, fork.remote_target, transport=self.transport),
            user_agent=self.ua.user_agent,
        )
        log.info("call %s: ending an extra forked answer from %s", self.id, fork.remote_target)
        await self.ua.request_with_auth(self.line, bye, next_hop)

    def _send_ack(self, response: SipResponse, dialog: Dialog | None = None) -> None:
        dialog = dialog or self.dialog
        assert dialog is not None and self.invite is not None
        request, next_hop = dialog.create_request(
            "ACK",
            self.ua.via_for(self.line, dialog.remote_target, transport=self.transport),
            cseq=self.invite.cseq.number,
            user_agent=self.ua.user_agent,
        )
        # ACK carries the INVITE's credentials (RFC 3261 §22.1 says proxies may want them).
        for name in ("Authorization", "Proxy-Authorization"):
            for value in self.invite.headers.get_all(name):
                request.headers.add(name, value)
        self.ua.send_stateless_to(request, next_hop)

    def _on_challenge(self, response: SipResponse) -> None:
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        digest = self.line.digest
        try:
            challenge = choose_challenge(response.headers.get_all(header))
        except DigestError as exc:
            log.warning("call %s: unusable %s: %s", self.id, header, exc)
            self._finish(EndReason.FAILED, response.status)
            return
        if digest is None:
            log.warning(
                "call %s: challenged (%s) but the line has no password", self.id, response.status
            )
            self._finish(EndReason.FAILED, response.status)
            return
        if not digest.is_stale_retry(challenge):
            self._auth_attempts += 1
        if self._auth_attempts > 1:
            log.warning("call %s: authentication failed (%s)", self.id, response.status)
            self._finish(EndReason.FAILED, response.status)
            return
        value = digest.authorize(challenge, "INVITE", str(self.target))
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        self.cseq += 1
        self._send_invite(auth=[(name, value)])

    def on_timeout(self) -> None:
        if self.state is CallState.ENDED:
            return
        self._finish(EndReason.TIMEOUT, 408)

    async def _hang_up_with(self, reason: EndReason) -> None:
        if self.state is CallState.ENDED and self.dialog is None:
            return
        if self.dialog is not None and self.state is not CallState.ENDED:
            await self._send_bye(reason)
            return
        if self.state is CallState.ENDED:
            return
        # Not answered yet: CANCEL (sent by the layer once a provisional arrived).
        self._cancel_requested = True
        if self.invite_tx is not None:
            self.ua.cancel(self.invite_tx)
        self._finish(reason)
