"""A simulated Telegram cloud: the MTProto server side, written for Linegram's tests and demo.

Telethon connects to it over TCP exactly as it connects to Telegram (its own
transport, auth-key exchange and encryption), so the gateway's Telethon code
and py-tgcalls' Telethon bridge run unmodified.  It implements only what the
product uses: sign-in, users, privacy, messages with inline bots and callback
queries, and private phone calls with signalling relay.  Faults (flood waits,
dropped connections, calls that never connect) are injected through
`Cloud.faults`.
"""
