"""SIP dialogs (RFC 3261 §12).

A :class:`Dialog` is the state two user agents share for the life of a call:
Call-ID, both tags, both CSeq counters, the remote target and the route set.
It is pure data plus the rules of §12: how it is created from a request and
its 2xx (UAS, §12.1.1) or a request and a response (UAC, §12.1.2), how
in-dialog requests are built (§12.2.1.1) and checked (§12.2.2), and how a
target refresh (re-INVITE, UPDATE) replaces the remote target.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from gateway.sip.message import (
    Address,
    CSeq,
    Headers,
    SipRequest,
    SipResponse,
    Via,
    new_branch,
)
from gateway.sip.uri import SipUri

__all__ = ["Dialog", "DialogId", "CSeqOrderError"]


@dataclass(frozen=True)
class DialogId:
    """Call-ID plus both tags: what identifies a dialog (§12)."""

    call_id: str
    local_tag: str
    remote_tag: str


class CSeqOrderError(ValueError):
    """An in-dialog request arrived with a CSeq lower than one already seen (§12.2.2: 500)."""


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: Address  # our From (UAC) or To (UAS), without tag parameter
    remote_uri: Address
    remote_target: SipUri  # the peer's Contact
    route_set: list[Address] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    contact: Address | None = None  # our Contact, sent on target refresh requests

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    # -- creation -------------------------------------------------------

    @classmethod
    def from_uas(cls, request: SipRequest, response: SipResponse, contact: Address) -> Dialog:
        """The dialog a UAS creates when it answers ``request`` with ``response`` (§12.1.1).

        The route set is the request's Record-Route in order; the remote
        target is the request's Contact.
        """
        local_tag = response.to_addr.tag
        if not local_tag:
            raise ValueError("a dialog-creating response needs a To tag")
        remote = request.from_addr
        routes = [Address.parse(v) for v in request.headers.get_list("Record-Route")]
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_uri=_without_tag(request.to_addr),
            remote_uri=_without_tag(remote),
            remote_target=_target_of(request),
            route_set=routes,
            local_seq=secrets.randbelow(2**16) + 1,
            remote_seq=request.cseq.number,
            contact=contact,
        )

    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse) -> Dialog:
        """The dialog a UAC creates from its request and a 101-299 response with a To tag (§12.1.2).

        The route set is the response's Record-Route in *reverse* order.
        """
        remote_tag = response.to_addr.tag
        if not remote_tag:
            raise ValueError("a dialog-creating response needs a To tag")
        routes = [Address.parse(v) for v in response.headers.get_list("Record-Route")]
        routes.reverse()
        contact_values = request.headers.get_list("Contact")
        return cls(
            call_id=request.call_id,
            local_tag=request.from_addr.tag or "",
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_addr),
            remote_uri=_without_tag(response.to_addr),
            remote_target=_target_of(response, fallback=request.uri),
            route_set=routes,
            local_seq=request.cseq.number,
            remote_seq=None,
            contact=Address.parse(contact_values[0]) if contact_values else None,
        )

    # -- requests within the dialog ---------------------------------------

    def matches(self, message: SipRequest | SipResponse, *, incoming: bool = True) -> bool:
        """True when ``message`` belongs to this dialog."""
        if message.call_id != self.call_id:
            return False
        if incoming and isinstance(message, SipRequest):
            return (message.from_addr.tag or "") == self.remote_tag and (
                message.to_addr.tag or ""
            ) == self.local_tag
        return (message.from_addr.tag or "") == self.local_tag and (
            message.to_addr.tag or ""
        ) == self.remote_tag

    def check_remote_cseq(self, request: SipRequest) -> None:
        """Apply §12.2.2: a lower CSeq than seen is out of order (500); ACK, CANCEL exempt."""
        if request.method in ("ACK", "CANCEL"):
            return
        number = request.cseq.number
        if self.remote_seq is not None and number <= self.remote_seq:
            # Equal is a retransmission the transaction layer absorbs; lower is disorder.
            if number < self.remote_seq:
                raise CSeqOrderError(f"CSeq {number} lower than {self.remote_seq}")
        self.remote_seq = number

    def refresh_target(self, message: SipRequest | SipResponse) -> None:
        """Target refresh (§12.2): a re-INVITE or its 2xx may carry a new Contact."""
        contacts = message.headers.get_list("Contact")
        if contacts:
            self.remote_target = Address.parse(contacts[0]).uri

    def create_request(
        self,
        method: str,
        via: Via,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
        user_agent: str | None = None,
    ) -> tuple[SipRequest, SipUri]:
        """Build an in-dialog request (§12.2.1.1) and return it with its next hop.

        ``via`` is our Via without a branch; a fresh branch is added, except
        that ACK for a 2xx must be built by the caller with ``cseq`` equal to
        the INVITE's.  The next hop is the first route (loose routing) or the
        remote target when the route set is empty.
        """
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        request_uri = self.remote_target
        routes = list(self.route_set)
        next_hop = routes[0].uri if routes else request_uri
        if routes and "lr" not in routes[0].uri.params:
            # Strict router (RFC 2543): it becomes the Request-URI, the target goes last.
            request_uri = routes[0].uri
            routes = [*routes[1:], Address(uri=self.remote_target)]
            next_hop = request_uri
        headers = Headers()
        top = Via(via.transport, via.host, via.port, dict(via.params))
        top.params["branch"] = new_branch()
        headers.add("Via", str(top))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(_with_tag(self.local_uri, self.local_tag)))
        headers.add("To", str(_with_tag(self.remote_uri, self.remote_tag)))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", str(CSeq(cseq, method)))
        for route in routes:
            headers.add("Route", str(route))
        if self.contact is not None and method in (
            "INVITE",
            "UPDATE",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
        ):
            headers.add("Contact", str(self.contact))
        if user_agent:
            headers.add("User-Agent", user_agent)
        for name, value in extra or []:
            headers.add(name, value)
        if content_type and body:
            headers.add("Content-Type", content_type)
        request = SipRequest(method=method, uri=request_uri, headers=headers, body=body)
        return request, next_hop


def _without_tag(address: Address) -> Address:
    params = {k: v for k, v in address.params.items() if k != "tag"}
    return Address(uri=address.uri, display_name=address.display_name, params=params)


def _with_tag(address: Address, tag: str) -> Address:
    params = dict(address.params)
    if tag:
        params["tag"] = tag
    return Address(uri=address.uri, display_name=address.display_name, params=params)


def _target_of(message: SipRequest | SipResponse, fallback: SipUri | None = None) -> SipUri:
    contacts = message.headers.get_list("Contact")
    if contacts:
        return Address.parse(contacts[0]).uri
    if fallback is not None:
        return fallback
    raise ValueError("a dialog-creating message needs a Contact")
