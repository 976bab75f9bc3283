"""Command-line pieces shared by the benches."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def calls_list(maximum: int) -> Callable[[str], list[int]]:
    """An argparse type for `--calls 1,4,16`: a comma-separated list of 1..maximum."""

    def parse(text: str) -> list[int]:
        values = [int(v) for v in text.split(",") if v.strip()]
        if not values or min(values) < 1 or max(values) > maximum:
            raise argparse.ArgumentTypeError(f"a comma-separated list of 1..{maximum}")
        return values

    return parse
