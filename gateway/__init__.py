"""Linegram gateway: one asyncio process that owns every call."""

__version__ = "0.1.0"
