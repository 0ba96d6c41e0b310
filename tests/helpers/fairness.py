"""Fairness values both tiers use: a published bustabit hash and a Spribe popup record."""

from __future__ import annotations

import hashlib
from decimal import Decimal

# bustabit classic (after Vx): a game hash and its bust "(matches site)", from
# github.com/sabari245/bustabit-tracker docs/bustabit-provably-fair.html (commit
# c54c0618b0b0b66c5788c7d5f75023816513ffbd, section 6); a slow test in tests/unit/test_fairness.py
# finds it is game 13,303,000 of the chain committed in bustabit's third seeding event.
CLASSIC_HASH = "df5d54b8ca42cb40ea80e8ba74b3281f7b9d49bc27fecbe104847de1e91e4929"

# No public popup with all its fields was found: these records are built here, with the
# merge order the module assumes, to test the checks themselves (not Spribe's scheme).


def spribe_record(**changes: object) -> dict[str, object]:
    """A consistent popup (every checkable step agrees), with ``changes`` applied."""
    seeds = ["aB3dE5gH7jK9mN1pQ3sT", "4fG7hJ9kL2", "zX8cV6bN4m", "qW2eR4tY6u"]
    combined = hashlib.sha512("".join(seeds).encode()).hexdigest()
    record: dict[str, object] = {
        "server_seed": seeds[0],
        "server_seed_sha256": hashlib.sha256(seeds[0].encode()).hexdigest(),
        "client_seed_1": seeds[1],
        "client_seed_2": seeds[2],
        "client_seed_3": seeds[3],
        "combined_sha512": combined,
        "hex": combined[:13],
        "decimal": int(combined[:13], 16),
        "result": Decimal("1.52"),
    }
    record.update(changes)
    return record
