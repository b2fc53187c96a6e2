"""Version strings of TensorRT and its plugin API, compared as tuples."""
from __future__ import annotations


def version_tuple(text: str) -> tuple[int, ...]:
    """'10.13.3.9' -> (10, 13, 3); non-digits ignored."""
    parts = []
    for p in str(text).split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)
