"""Real SIP peers for the interop suite: sipp, Kamailio, baresip and the gateway itself.

Not an RFC module.  Every peer is a subprocess started by a fixture and always
stopped by it (SIGTERM, then SIGKILL after a grace period); its log lives in the
test's ``tmp_path`` and is attached to the report when the test fails.
"""
