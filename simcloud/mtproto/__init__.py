"""MTProto 2.0, server side: transports, the auth-key exchange and encrypted sessions.

Each module is sans-IO (bytes in, bytes out); `simcloud.server` drives them
over asyncio TCP.
"""
