"""Spribe's games (Aviator, Aviatrix): what a round's provably-fair popup lets one check.

Spribe does not publish the step from hash to result; ``check_spribe_record`` checks the
relations the popup shows (the server seed's commitment, the combined hash, its hex and
decimal) and says so for the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from crashlog.fairness.chains import hex_argument

OK = "ok"
MISMATCH = "mismatch"
UNCONFIRMED = "unconfirmed"
NOT_RECORDED = "not recorded"
UNPUBLISHED = "not verifiable (unpublished)"


@attrs.frozen
class Finding:
    """One check of a provably-fair record: what was checked, its status, and why.

    status: ``ok``; ``mismatch`` (a documented relation fails); ``unconfirmed`` (a relation
    that rests on an unpublished convention does not hold: the convention may be what is
    wrong); ``not recorded`` (a field it needs is missing); ``not verifiable (unpublished)``.
    """

    check: str
    status: str
    detail: str


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def client_seeds(record: Any) -> list[str]:
    """The record's client seeds, in the order the popup lists them."""
    seeds = (_field(record, f"client_seed_{i}") for i in (1, 2, 3))
    return [s for s in seeds if s]


def check_spribe_record(record: Any) -> list[Finding]:
    """Check a Spribe-style record (a ``FairnessRecorded`` or a mapping of its fields).

    1. commitment: SHA-256 of the server seed equals the SHA-256 shown before the round.
    2. combined hash: SHA-512 of the merged seeds equals the popup's. Spribe says the server
       seed and the client seeds are "combined" but does not publish how; the one order
       checked is the server seed followed by the client seeds as the popup lists them,
       without separator (what published walk-throughs of the popup do). A miss is
       ``unconfirmed``, not ``mismatch``.
    3. hex: the popup's hex is the first digits of the combined hash (``unconfirmed`` if not:
       a popup convention, not a published rule).
    4. decimal: the hex read as a base-16 number equals the popup's decimal.
    5. result: Spribe has not published how the hash becomes the result:
       ``not verifiable (unpublished)``, always.
    """
    findings = [_commitment(record), _combined(record), *_hex_and_decimal(record)]
    findings.append(Finding(
        "result from hash", UNPUBLISHED,
        "Spribe has not published how the combined hash becomes the result; "
        "the result is recorded, not checked",
    ))
    return findings


def _commitment(record: Any) -> Finding:
    seed, commitment = _field(record, "server_seed"), _field(record, "server_seed_sha256")
    if not seed or not commitment:
        return Finding("server seed commitment", NOT_RECORDED,
                       "needs server_seed and server_seed_sha256")
    actual = hashlib.sha256(seed.encode()).hexdigest()
    if actual == commitment.strip().lower():
        return Finding("server seed commitment", OK, "SHA-256 of the server seed is the commitment")
    return Finding("server seed commitment", MISMATCH,
                   f"SHA-256 of the server seed is {actual}, the commitment shown is {commitment}")


def _combined(record: Any) -> Finding:
    seed, shown, seeds = _field(record, "server_seed"), _field(record, "combined_sha512"), client_seeds(record)
    if not seed or not shown or not seeds:
        return Finding("combined SHA-512", NOT_RECORDED,
                       "needs server_seed, client seeds and combined_sha512")
    actual = hashlib.sha512((seed + "".join(seeds)).encode()).hexdigest()
    if actual == shown.strip().lower():
        return Finding("combined SHA-512", OK,
                       f"SHA-512 of server seed + {len(seeds)} client seeds (popup order)")
    return Finding("combined SHA-512", UNCONFIRMED,
                   "SHA-512 of server seed + client seeds (popup order) is not the hash shown; "
                   "Spribe does not publish the merge order, so this may be the order, not the game")


def _hex_and_decimal(record: Any) -> list[Finding]:
    shown_hex, shown_decimal = _field(record, "hex"), _field(record, "decimal")
    if not shown_hex:
        return [Finding("hex to decimal", NOT_RECORDED, "needs hex")]
    try:
        digits = hex_argument("hex", shown_hex.strip())
    except ValueError as exc:
        return [Finding("hex to decimal", MISMATCH, str(exc))]
    findings = []
    combined = _field(record, "combined_sha512")
    if combined:
        if combined.strip().lower().startswith(digits):
            findings.append(Finding("hex from hash", OK, f"the first {len(digits)} digits of the hash"))
        else:
            findings.append(Finding("hex from hash", UNCONFIRMED,
                                    f"{digits} is not the start of the combined hash"))
    if shown_decimal is None:
        findings.append(Finding("hex to decimal", NOT_RECORDED, "needs decimal"))
    elif int(digits, 16) == int(shown_decimal):
        findings.append(Finding("hex to decimal", OK, f"0x{digits} = {int(shown_decimal)}"))
    else:
        findings.append(Finding("hex to decimal", MISMATCH,
                                f"0x{digits} = {int(digits, 16)}, the popup shows {shown_decimal}"))
    return findings


def problems(findings: Sequence[Finding]) -> list[str]:
    """The checks that failed or could not confirm their convention."""
    return [f.check for f in findings if f.status in (MISMATCH, UNCONFIRMED)]
