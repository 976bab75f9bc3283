"""Source screening: rate limit, scanner user agents, allow-lists."""

from __future__ import annotations

from gateway.sip.security import RateLimiter, ScannerFilter, SourceList, parse_networks


def test_rate_limiter_allows_burst_then_refills_at_rate() -> None:
    limiter = RateLimiter(rate=10.0, burst=20.0)
    allowed = sum(limiter.allow("192.0.2.1", 0.0) for _ in range(30))
    assert allowed == 20
    assert limiter.dropped == 10
    # 0.5 s later, 5 tokens have come back.
    assert sum(limiter.allow("192.0.2.1", 0.5) for _ in range(10)) == 5


def test_rate_limiter_is_per_source() -> None:
    limiter = RateLimiter(rate=1.0, burst=1.0)
    assert limiter.allow("192.0.2.1", 0.0)
    assert not limiter.allow("192.0.2.1", 0.0)
    assert limiter.allow("192.0.2.2", 0.0)


def test_rate_limiter_table_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=2.0, max_sources=100)
    for i in range(1000):
        limiter.allow(f"10.0.{i // 256}.{i % 256}", float(i) * 0.001)
    assert len(limiter._buckets) <= 100


def test_scanner_filter_matches_known_agents_case_insensitively() -> None:
    scanners = ScannerFilter(["friendly-scanner", "sipvicious", "VaxSIPUserAgent"])
    assert scanners.is_scanner("friendly-scanner")
    assert scanners.is_scanner("SIPVicious 0.3.8")
    assert scanners.is_scanner("vaxsipuseragent/3.1")
    assert not scanners.is_scanner("Grandstream HT801 1.0.45.2")
    assert not scanners.is_scanner(None)
    assert scanners.dropped == 3


def test_source_list_matches_addresses_and_networks() -> None:
    sources = SourceList(parse_networks(["192.168.1.50", "10.0.0.0/8", "2001:db8::/32"]))
    assert "192.168.1.50" in sources
    assert "192.168.1.51" not in sources
    assert "10.20.30.40" in sources
    assert "2001:db8::1" in sources
    assert "[2001:db8::1]" in sources
    assert "not-an-ip" not in sources


def test_is_ip_tells_addresses_from_names() -> None:
    from gateway.sip.security import is_ip

    assert is_ip("192.0.2.1") and is_ip("2001:db8::1") and is_ip("[2001:db8::1]")
    assert not is_ip("sip.example.net") and not is_ip("") and not is_ip("1.2.3")
