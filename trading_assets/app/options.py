"""Parsing shared by the commands' options."""

from __future__ import annotations


def split_csv(value: str) -> list[str]:
    """The non-blank items of a comma-separated option, stripped."""
    return [v.strip() for v in value.split(",") if v.strip()]
