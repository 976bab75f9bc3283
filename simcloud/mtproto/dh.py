"""Telegram's Diffie-Hellman group: one 2048-bit prime and g = 3 for everything.

The same safe prime serves the auth-key exchange (server_DH_inner_data),
two-step verification (SRP-2048) and the key exchange of calls
(messages.getDhConfig).  g = 3 generates its quadratic residues because
p mod 3 == 2 (Telethon checks that).
"""

from __future__ import annotations

PRIME = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"
    "48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"
    "20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"
    "A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"
    "FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"
    "0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
G = 3
PRIME_BYTES = PRIME.to_bytes(256, "big")
# g_a and g_b must keep this far from 1 and from p (core.telegram.org/mtproto/auth_key).
SAFETY_MARGIN = 1 << (2048 - 64)


def in_safe_range(value: int) -> bool:
    """2^(2048-64) < value < p - 2^(2048-64): the check both sides make on g_a and g_b."""
    return SAFETY_MARGIN < value < PRIME - SAFETY_MARGIN
