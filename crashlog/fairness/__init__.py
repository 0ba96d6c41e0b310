"""Provably-fair verification: recompute crash points from the operators' published hash chains.

A hash-chain crash game (bustabit, Stake, Roobet) commits to a chain of SHA-256 hashes before it
starts and plays it backwards: the previous game's hash is the SHA-256 of this game's, and
each game's crash point is an HMAC of its hash with a public salt. Given the hash of a late
game, anyone can recompute every earlier game, and ``verify_chain`` compares them with the
rounds crashlog recorded: a mismatch is a misread (OCR, scraper) or a platform problem.

Everything here follows the operators' published code (cited per constant below), including
their JavaScript double-precision arithmetic, so results match theirs to the cent.

Spribe's games (Aviator, Aviatrix) do not publish the step from hash to result; for them
``check_spribe_record`` checks what a round's provably-fair popup lets one check, and says
so for the rest.

Where it lives: ``chains`` (the schemes: crash point and chain step per operator, walking
and locating a hash on a chain), ``verify`` (``verify_chain`` against the recorded rounds),
``spribe`` (the popup checks). Every name is importable from ``crashlog.fairness``.
"""

from crashlog.fairness.chains import (
    BUSTABIT_CLASSIC_SALT,
    BUSTABIT_CLASSIC_TERMINATING_HASH,
    BUSTABIT_ERAS,
    BUSTABIT_V1_CLIENT_SEED,
    BUSTABIT_V2_SALT,
    BUSTABIT_V2_TERMINATING_HASH,
    BUSTABIT_VX_LAST_GAME,
    ROOBET_INSTANT_BUST_EVERY,
    ROOBET_SALT,
    ROOBET_TERMINATING_HASH,
    SCHEMES,
    STAKE_SALT,
    STAKE_TERMINATING_HASH,
    ChainRound,
    Scheme,
    bustabit_crash_point,
    bustabit_previous_hash,
    locate_in_chain,
    multiplier_from_hex,
    roobet_crash_point,
    roobet_previous_hash,
    stake_crash_point,
    stake_previous_hash,
    stake_unrounded_crash_point,
    walk_chain,
)
from crashlog.fairness.spribe import (
    MISMATCH,
    NOT_RECORDED,
    OK,
    UNCONFIRMED,
    UNPUBLISHED,
    Finding,
    check_spribe_record,
    client_seeds,
    problems,
)
from crashlog.fairness.verify import ChainReport, Mismatch, verify_chain

__all__ = [
    "BUSTABIT_CLASSIC_SALT",
    "BUSTABIT_CLASSIC_TERMINATING_HASH",
    "BUSTABIT_ERAS",
    "BUSTABIT_V1_CLIENT_SEED",
    "BUSTABIT_V2_SALT",
    "BUSTABIT_V2_TERMINATING_HASH",
    "BUSTABIT_VX_LAST_GAME",
    "MISMATCH",
    "NOT_RECORDED",
    "OK",
    "ROOBET_INSTANT_BUST_EVERY",
    "ROOBET_SALT",
    "ROOBET_TERMINATING_HASH",
    "SCHEMES",
    "STAKE_SALT",
    "STAKE_TERMINATING_HASH",
    "UNCONFIRMED",
    "UNPUBLISHED",
    "ChainReport",
    "ChainRound",
    "Finding",
    "Mismatch",
    "Scheme",
    "bustabit_crash_point",
    "bustabit_previous_hash",
    "check_spribe_record",
    "client_seeds",
    "locate_in_chain",
    "multiplier_from_hex",
    "problems",
    "roobet_crash_point",
    "roobet_previous_hash",
    "stake_crash_point",
    "stake_previous_hash",
    "stake_unrounded_crash_point",
    "verify_chain",
    "walk_chain",
]
