"""Blueprints, one per page of the web UI."""
