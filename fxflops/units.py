"""Format FLOP counts for people and parse FLOP budgets written by people.

This module imports neither torch nor the rest of fxflops' engine, so the pytest plugin can use it in
every pytest run without paying for a torch import.

Counts are plain integers of FLOPs (fxflops counts 1 multiply-accumulate = 2 FLOPs). Prefixes are SI,
powers of 1000: K, M, G, T, P. Binary prefixes (``Gi``) and MAC units are rejected with a reason,
because a budget that silently means something else than it says is worse than no budget.

>>> format_flops(41_086_447_616)
'41.09 GFLOPs'
>>> format_flops(41_086_447_616, exact=True)
'41.086447616 GFLOPs'
>>> parse_flops("40 GFLOPs")
40000000000
>>> parse_flops(format_flops(41_086_447_616, exact=True))
41086447616
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from fxflops.errors import FxFlopsError

__all__ = ["SI_PREFIXES", "FlopValueError", "format_count", "format_flops", "parse_flops"]

SI_PREFIXES: tuple[str, ...] = ("", "K", "M", "G", "T", "P")
"""Prefixes in increasing order; the prefix at index ``i`` multiplies by ``1000**i``."""

_PREFIX_EXPONENT = {prefix.lower(): index for index, prefix in enumerate(SI_PREFIXES)}

# A decimal number: "40", "1.5", ".5", "1.5e9", "2E+3". ASCII digits only (``\d`` would accept
# other scripts' digits). Signs are matched so that "-5" gets the "negative" message instead of the
# generic one.
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[+-]?[0-9]+)?"
_BUDGET_RE = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<prefix>[kmgtp])?(?:flops?)?\s*", re.IGNORECASE)
_MACS_RE = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<prefix>[kmgtp])?macs?\s*", re.IGNORECASE)
_BINARY_RE = re.compile(rf"\s*{_NUMBER}\s*[kmgtpe]i(?:flops?|macs?|b)?\s*", re.IGNORECASE)

# Far above any real model, and low enough that int() of an absurd exponent ("1e999999") cannot
# allocate a huge integer.
_MAX_ADJUSTED_EXPONENT = 30

_EXPECTED = (
    "expected a number with an optional SI prefix (K, M, G, T, P) and unit, "
    'e.g. "40 GFLOPs", "200 KFLOPs", "1.5e9" or 40000000000'
)


class FlopValueError(FxFlopsError, ValueError):
    """A FLOP count or budget could not be parsed, or is not a non-negative whole number of FLOPs.

    It is both a :class:`ValueError` (the value is wrong, like ``int("x")``) and an
    :class:`~fxflops.errors.FxFlopsError`, so ``except FxFlopsError`` catches every fxflops error.
    """


def format_count(n: int) -> str:
    """Return ``n`` with thousands separators: ``41086447616`` -> ``"41,086,447,616"``."""
    return f"{n:,}"


def format_flops(n: int, *, exact: bool = False) -> str:
    """Return ``n`` FLOPs as a short, parseable string with an SI prefix.

    Below 1000 the count is printed as is (``"512 FLOPs"``). Otherwise the largest prefix that keeps
    the number at least 1 is used, with two decimals (``"41.09 GFLOPs"``), rounding half up; a
    value that rounds to 1000 moves to the next prefix (``999_999 -> "1.00 MFLOPs"``). With
    ``exact=True`` no digit is dropped and trailing zeros are stripped (``"41.086447616 GFLOPs"``,
    ``"40 GFLOPs"``), so that ``parse_flops(format_flops(n, exact=True)) == n`` for every ``n >= 0``.
    Negative ``n`` (a difference of counts) is formatted like ``-n`` with a minus sign.

    >>> format_flops(512), format_flops(8_817_623_040), format_flops(40 * 10**9, exact=True)
    ('512 FLOPs', '8.82 GFLOPs', '40 GFLOPs')
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"format_flops expects an int, got {type(n).__name__}")
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n < 1000:
        return f"{sign}{n} FLOPs"
    exponent = min((len(str(n)) - 1) // 3, len(SI_PREFIXES) - 1)
    if exact:
        whole, fraction = divmod(n, 1000**exponent)
        digits = str(fraction).rjust(3 * exponent, "0").rstrip("0")
        number = f"{whole}.{digits}" if digits else str(whole)
        return f"{sign}{number} {SI_PREFIXES[exponent]}FLOPs"
    # Integer arithmetic: floats would misround counts above 2**53.
    scale = 1000**exponent
    hundredths = (n * 100 + scale // 2) // scale
    if hundredths >= 100_000 and exponent < len(SI_PREFIXES) - 1:
        exponent += 1
        scale *= 1000
        hundredths = (n * 100 + scale // 2) // scale
    whole, cents = divmod(hundredths, 100)
    return f"{sign}{whole}.{cents:02d} {SI_PREFIXES[exponent]}FLOPs"


def parse_flops(value: str | int | float) -> int:
    """Return the number of FLOPs that ``value`` denotes, as an exact ``int``.

    Accepted, case-insensitively and with optional spaces: ``"40 GFLOPs"``, ``"200 KFLOPs"``,
    ``"40G"``, ``"1.5e9"``, ``"512 FLOP"``, and ``int`` or integral ``float`` values (``1.5e9``).
    Prefixes are SI (K = 10^3, M = 10^6, G = 10^9, T = 10^12, P = 10^15); as the string is read
    case-insensitively, ``"m"`` is mega, never milli. The result must be a whole, non-negative number.

    Raises :class:`FlopValueError` (a ``ValueError``) naming the input, and for a MAC budget such as
    ``"40 GMACs"`` giving the FLOP figure to write instead (``"80 GFLOPs"``: 1 MAC = 2 FLOPs).

    >>> parse_flops("40 GFLOPs"), parse_flops("200 KFLOPs"), parse_flops("1.5e9"), parse_flops(64)
    (40000000000, 200000, 1500000000, 64)
    """
    if isinstance(value, bool):
        raise FlopValueError(f"invalid FLOP count {_quote(value)}: {_EXPECTED}")
    if isinstance(value, int):
        return _non_negative(value, value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise FlopValueError(f"invalid FLOP count {_quote(value)}: not a whole number of FLOPs")
        return _non_negative(int(value), value)
    if not isinstance(value, str):
        raise FlopValueError(
            f"invalid FLOP count {_quote(value)} of type {type(value).__name__}: {_EXPECTED}"
        )

    match = _BUDGET_RE.fullmatch(value)
    if match is None:
        raise FlopValueError(_explain_rejection(value))
    amount = _scaled(match["number"], match["prefix"], value)
    if amount.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise FlopValueError(
            f"invalid FLOP count {_quote(value)}: too large (above 10^{_MAX_ADJUSTED_EXPONENT})"
        )
    if amount != amount.to_integral_value():
        raise FlopValueError(f"invalid FLOP count {_quote(value)}: not a whole number of FLOPs")
    return _non_negative(int(amount), value)


def _scaled(number: str, prefix: str | None, original: str) -> Decimal:
    """Return ``number`` times the prefix's power of 1000, exactly."""
    try:
        amount = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the regex only lets decimal literals through
        raise FlopValueError(f"invalid FLOP count {_quote(original)}: {_EXPECTED}") from None
    return amount.scaleb(3 * _PREFIX_EXPONENT[(prefix or "").lower()])


def _quote(value: object) -> str:
    """Quote strings with double quotes, as users write them in Python and TOML; repr anything else."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _non_negative(count: int, original: object) -> int:
    if count < 0:
        raise FlopValueError(f"invalid FLOP count {_quote(original)}: must not be negative")
    return count


def _explain_rejection(value: str) -> str:
    """Return the message for a string that is not a FLOP count, with the most specific reason."""
    macs = _MACS_RE.fullmatch(value)
    if macs is not None:
        flops = Decimal(macs["number"]) * 2
        # "f" formatting of a normalized Decimal never uses an exponent: 8E+1 -> "80".
        figure = format(flops.normalize(), "f")
        prefix = (macs["prefix"] or "").upper()
        return (
            f"{_quote(value)}: budgets are in FLOPs (fxflops counts 1 MAC = 2 FLOPs); "
            f'write "{figure} {prefix}FLOPs"'
        )
    if _BINARY_RE.fullmatch(value) is not None:
        return (
            f"invalid FLOP count {_quote(value)}: binary prefixes (Ki, Mi, Gi, ...) are not supported; "
            "use SI prefixes K = 10^3, M = 10^6, G = 10^9, T = 10^12, P = 10^15"
        )
    return f"invalid FLOP count {_quote(value)}: {_EXPECTED}"
