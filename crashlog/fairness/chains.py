"""Hash-chain crash games (bustabit, Stake, Roobet): each game's crash point from its hash, the chain.

A hash-chain crash game commits to a chain of SHA-256 hashes before it starts and plays it
backwards: the previous game's hash is the SHA-256 of this game's, and each game's crash
point is an HMAC of its hash with a public salt. Everything here follows the operators'
published code (cited per constant below), including their JavaScript double-precision
arithmetic, so results match theirs to the cent.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable, Iterator
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import attrs

from crashlog.law import CENT

ONE = Decimal("1.00")

# -- bustabit ---------------------------------------------------------------------------------
# v1 (2014-2018): github.com/bustabit/v1-gameserver server/lib.js (crashPointFromHash,
# genGameHash) and populate_hashes.js; first seeding event, bitcointalk topic 922898.
# key = the game hash (its hex text), message = this client seed (hash of bitcoin block
# 339300); an instant bust when the HMAC, as a number, is divisible by 101.
BUSTABIT_V1_CLIENT_SEED = "000000000000000007a9a31ff7f07463d91af6b5454241d5faf282e5e0fe1b3a"
# v2 (2018-): bitcointalk topic 2807542 ("bustabit v2 seeding event"), and bustabit's verifier
# (github.com/bustabit/verifier src/constants.ts PREV_GAME_SALT, src/utils/math.ts gameResult,
# src/verifier.worker.ts). key = this salt (hash of bitcoin block 505750, as text), message =
# the game hash's 32 bytes; games 1 to 10,000,000; the chain hashes each hash's hex text.
BUSTABIT_V2_SALT = "0000000000000000004d6ec16dafe9d8370958664c1dc422f452892264c59526"
BUSTABIT_V2_TERMINATING_HASH = "86728f5fc3bd99db94d3cdaf105d67788194e9701bf95d049ad0e1ee3d004277"
# classic: the chain committed in bustabit's third seeding event (bitcointalk topic 5485695,
# terminating hash below; it hashes the previous hash's 32 bytes, not its text), played with
# Vx signatures up to game 12,279,450 and, after Vx shut down, with the classic HMAC and the
# salt of the current seeding event (bitcointalk topic 5560454; bustabit/verifier
# src/constants.ts GAME_SALT, VX_LAST_GAME, src/verifier.worker.ts).
BUSTABIT_CLASSIC_SALT = "00000000000000000001e08b7fd44f95e3e950ac65650a8031a6d5e1750e34be"
BUSTABIT_CLASSIC_TERMINATING_HASH = (
    "567a98370fb7545137ddb53687723cf0b8a1f5e93b1f76f4a1da29416930fa59"
)
BUSTABIT_VX_LAST_GAME = 12_279_450

BUSTABIT_ERAS = ("v1", "v2", "classic")

# -- Stake --------------------------------------------------------------------------------------
# Stake's crash seeding event, bitcointalk topic 5162888: a chain of 10,000,000 SHA-256 hashes
# "where each hash is the hash of the hexadecimal representation of the previous hash";
# key = the game hash, message = the hash of bitcoin block 584,500;
# crashpoint = max(1, 2^32 / (int + 1) * (1 - 0.01)) with int the HMAC's first 8 hex digits.
STAKE_SALT = "0000000000000000001b34dc6a1e86083f95500b096231436e9b25cbdd0075c4"
STAKE_TERMINATING_HASH = "78a9757d3be42b74a3f70239078ad9317125fe9ee630d5bdada46de963e56752"

# -- Roobet -------------------------------------------------------------------------------------
# Roobet's crash seeding event (twitter.com/Roobet/status/1211800855223123968, 2019-12-31, as
# Roobet's verifier scripts cite it): the salt is the hash of bitcoin block 610,546; key = the
# game hash (its hex text), message = the salt's text (crashPointFromHash); the chain hashes each
# hash's hex text (generateHash); the SHA-256 of game 1's hash is the first hash below. The
# instant bust is hs = parseInt(100 / 3): the HMAC divisible by 33, as in the verifier that
# MindingTheData/Crash-Analysis Crash.ipynb (commit 000cecdae238a5716808b929920cddaec12cc73a)
# reproduces; its 732,367 results (games 1 to 732,367) are this scheme's. Some other copies of
# Roobet's verifier pair this salt with parseInt(100 / 4) (1 in 25); game 749,059 (hash
# 3310b1da..., 1.00 by 33, 1.47 by 25) would tell them apart, but no result Roobet showed for it
# was found.
ROOBET_SALT = "0000000000000000000fa3b65e43e4240d71762a5bf397d5304b2596d116859c"
ROOBET_TERMINATING_HASH = "77b271fe12fca03c618f63dfb79d4105726ba9d4a25bb3f1964e435ccf9cb209"
ROOBET_INSTANT_BUST_EVERY = 33

_TWO52 = 2.0**52
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def hex_argument(name: str, value: Any, *, length: int | None = None, minimum: int = 1) -> str:
    """``value`` as lowercase hex digits, or ValueError naming the argument and the value
    (shared with the Spribe checks)."""
    if not isinstance(value, str):
        raise ValueError(f"{name}={value!r}: must be a string of hex digits")
    if length is not None and len(value) != length:
        raise ValueError(f"{name}={value!r}: must be {length} hex digits, not {len(value)}")
    if len(value) < minimum:
        raise ValueError(f"{name}={value!r}: needs at least {minimum} hex digits, has {len(value)}")
    if not _HEX_DIGITS.issuperset(value):
        raise ValueError(f"{name}={value!r}: is not hexadecimal (0-9, a-f only)")
    return value.lower()


def _era_argument(era: Any) -> str:
    if era not in BUSTABIT_ERAS:
        raise ValueError(f"era={era!r}: unknown; known eras: {', '.join(BUSTABIT_ERAS)}")
    return str(era)


def _hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def _instant_bust_or_shape(mac: str, every: int) -> Decimal:
    """bustabit v1's mapping, which Roobet copied: 1.00 when the HMAC (a number) is divisible by
    ``every``, else floor((100e - h) / (e - h)) cents, h its first 52 bits and e = 2^52, in
    doubles as the operators' JavaScript computes it."""
    if int(mac, 16) % every == 0:  # lib.js divisible(): the same remainder, 16 bits at a time
        return ONE
    h = float(int(mac[:13], 16))
    return _cents(math.floor((100 * _TWO52 - h) / (_TWO52 - h)))


def multiplier_from_hex(hex_digest: str, *, rtp_percent: float | Decimal | int = 99) -> Decimal:
    """The common 52-bit mapping: floor(rtp / (1 - X)) / 100, at least 1.00.

    X is the first 13 hex digits of ``hex_digest`` over 2^52 (uniform in [0, 1)). The
    division runs in IEEE doubles, exactly as the operators' published JavaScript does
    (``Math.floor(99 / (1 - X))``), so the cent matches theirs even at the rare quotient a
    double rounds up to a whole cent. With rtp 99 this is bustabit's v2 and classic result.
    """
    digits = hex_argument("hex_digest", hex_digest, minimum=13)
    if isinstance(rtp_percent, bool) or not isinstance(rtp_percent, (int, float, Decimal)):
        raise ValueError(f"rtp_percent={rtp_percent!r}: must be a number")
    rtp = float(rtp_percent)
    if not 0 < rtp <= 100:
        raise ValueError(f"rtp_percent={rtp_percent!r}: must be in (0, 100]")
    x = int(digits[:13], 16) / _TWO52
    return max(ONE, _cents(math.floor(rtp / (1 - x))))


def bustabit_crash_point(game_hash: str, *, era: str = "classic") -> Decimal:
    """bustabit's crash point of the game whose hash is ``game_hash``, in ``era``'s scheme.

    ``v1``: HMAC-SHA256(key = the hash's text, message = block 339300's hash); 1 game in 101
    (the HMAC divisible by 101) busts instantly; else floor((100e - h) / (e - h)) cents with
    h its first 52 bits and e = 2^52. The v1 server records an instant bust as 0; it is
    returned as 1.00, where the game ended (crashlog's multipliers start at 1.00).
    ``v2`` and ``classic``: HMAC-SHA256(key = the era's salt text, message = the hash's 32
    bytes), then ``multiplier_from_hex`` at 99 (a result below 1.00 is 1.00: 1% of games).
    Vx-era games (10,000,001 to 12,279,450) need Vx's signatures and are not covered.
    """
    era = _era_argument(era)
    digits = hex_argument("game_hash", game_hash, length=64)
    if era == "v1":
        return _instant_bust_or_shape(_hmac_hex(digits.encode(), BUSTABIT_V1_CLIENT_SEED.encode()), 101)
    salt = BUSTABIT_V2_SALT if era == "v2" else BUSTABIT_CLASSIC_SALT
    return multiplier_from_hex(_hmac_hex(salt.encode(), bytes.fromhex(digits)), rtp_percent=99)


def bustabit_previous_hash(game_hash: str, *, era: str = "classic") -> str:
    """The hash of the game before ``game_hash``'s: SHA-256 of its hex text (v1, v2) or of its
    32 bytes (classic, the chain of the third seeding event)."""
    era = _era_argument(era)
    digits = hex_argument("game_hash", game_hash, length=64)
    data = bytes.fromhex(digits) if era == "classic" else digits.encode()
    return hashlib.sha256(data).hexdigest()


def stake_unrounded_crash_point(game_hash: str) -> float:
    """Stake's crash point as its seeding post computes it: the double
    max(1, 2^32 / (int + 1) * 0.99), int the HMAC's first 8 hex digits. Stake's calculation
    page shows this value (e.g. 2.5682504010713783); ``stake_crash_point`` is it to the cent."""
    digits = hex_argument("game_hash", game_hash, length=64)
    n = int(_hmac_hex(digits.encode(), STAKE_SALT.encode())[:8], 16)
    return max(1.0, (2.0**32 / (n + 1)) * (1 - 0.01))


def stake_crash_point(game_hash: str) -> Decimal:
    """Stake's crash point of the game whose hash is ``game_hash``, rounded down to the cent.

    The seeding post gives the unrounded double (``stake_unrounded_crash_point``); the game
    shows two decimals, taken here as rounded down (as Stake's other crash results are).
    """
    return Decimal(stake_unrounded_crash_point(game_hash)).quantize(CENT, rounding=ROUND_FLOOR)


def stake_previous_hash(game_hash: str) -> str:
    """The hash of the game before ``game_hash``'s on Stake: SHA-256 of its hex text."""
    return hashlib.sha256(hex_argument("game_hash", game_hash, length=64).encode()).hexdigest()


def roobet_crash_point(game_hash: str) -> Decimal:
    """Roobet's crash point of the game whose hash is ``game_hash`` (the chain salted with bitcoin
    block 610,546's hash).

    HMAC-SHA256(key = the hash's text, message = the salt's text); 1 game in 33 (the HMAC
    divisible by 33) is 1.00, else floor((100e - h) / (e - h)) cents with h its first 52 bits
    and e = 2^52: P(X >= x) = (32/33) * 0.99 / (x - 0.01), not the r/x law.
    """
    digits = hex_argument("game_hash", game_hash, length=64)
    return _instant_bust_or_shape(_hmac_hex(digits.encode(), ROOBET_SALT.encode()), ROOBET_INSTANT_BUST_EVERY)


def roobet_previous_hash(game_hash: str) -> str:
    """The hash of the game before ``game_hash``'s on Roobet: SHA-256 of its hex text."""
    return hashlib.sha256(hex_argument("game_hash", game_hash, length=64).encode()).hexdigest()


# -- walking a chain ------------------------------------------------------------------------


@attrs.frozen
class Scheme:
    """One operator's published scheme: its crash point, its chain step, the games it covers,
    and the chain it committed to."""

    name: str
    crash_point: Callable[[str], Decimal]
    previous_hash: Callable[[str], str]
    #: The lowest and highest game numbers the scheme covers (None: not bounded).
    first_game: int | None
    last_game: int | None
    #: The published end of the chain: the previous hash of the chain's first game.
    terminating_hash: str
    #: The game number whose previous hash is the terminating hash, less one: a hash that
    #: reaches the terminating hash in k steps is game ``number_base + k``.
    number_base: int
    #: How many games the chain holds (a bound on the steps to the terminating hash).
    chain_length: int
    #: The chain step hashes the previous hash's 32 bytes (else its hex text).
    chain_of_bytes: bool = False


def _bustabit(era: str, first: int | None, last: int | None, *, terminating: str, base: int,
              length: int) -> Scheme:
    return Scheme(
        name=f"bustabit-{era}",
        crash_point=lambda h: bustabit_crash_point(h, era=era),
        previous_hash=lambda h: bustabit_previous_hash(h, era=era),
        first_game=first,
        last_game=last,
        terminating_hash=terminating,
        number_base=base,
        chain_length=length,
        chain_of_bytes=era == "classic",
    )


SCHEMES: dict[str, Scheme] = {
    # v1: populate_hashes.js gives game 1e6 + k the hash k steps above the seed; the
    # database's getLastGameInfo (v1-webserver, v1-gameserver) starts from game 1e6 - 1
    # with this terminating hash (the first seeding event, bitcointalk topic 922898).
    "bustabit-v1": _bustabit(
        "v1", None, None, base=999_999, length=10_000_000,
        terminating="c1cfa8e28fc38999eaa888487e443bad50a65e0b710f649affa6718cfbfada4d"),
    # v2: "The 10,000,000th element of the chain is the hash of game #1".
    "bustabit-v2": _bustabit(
        "v2", 1, 10_000_000, base=0, length=10_000_000,
        terminating=BUSTABIT_V2_TERMINATING_HASH),
    # classic: verifier.worker.ts walks game N down to 10,000,001, then one more step.
    "bustabit-classic": _bustabit(
        "classic", BUSTABIT_VX_LAST_GAME + 1, None, base=10_000_000, length=100_000_000,
        terminating=BUSTABIT_CLASSIC_TERMINATING_HASH),
    # Stake publishes no game numbering: k steps from the terminating hash is game k.
    "stake": Scheme("stake", stake_crash_point, stake_previous_hash, None, None,
                    terminating_hash=STAKE_TERMINATING_HASH, number_base=0,
                    chain_length=10_000_000),
    # Roobet: game 1's previous hash is the first hash of the seeding event (game k is k steps
    # above it). The chain's length was not found published: 10 million bounds the search.
    "roobet": Scheme("roobet", roobet_crash_point, roobet_previous_hash, 1, None,
                     terminating_hash=ROOBET_TERMINATING_HASH, number_base=0,
                     chain_length=10_000_000),
}


def locate_in_chain(game_hash: str, *, scheme: Scheme, max_steps: int | None = None) -> int | None:
    """The game number of ``game_hash`` on ``scheme``'s committed chain, or None when it is
    not on it: the hash is stepped towards the terminating hash (at most the chain's length,
    a few seconds per million). Reaching it proves the game was fixed before the chain
    was published."""
    digits = hex_argument("hash", game_hash, length=64)
    sha256 = hashlib.sha256
    limit = (max_steps or scheme.chain_length) + 1
    # The same step as scheme.previous_hash, without its per-call checks: millions of steps.
    if scheme.chain_of_bytes:
        current, target = bytes.fromhex(digits), bytes.fromhex(scheme.terminating_hash)
        for steps in range(1, limit):
            current = sha256(current).digest()
            if current == target:
                return scheme.number_base + steps
    else:
        text = digits
        for steps in range(1, limit):
            text = sha256(text.encode()).hexdigest()
            if text == scheme.terminating_hash:
                return scheme.number_base + steps
    return None


@attrs.frozen
class ChainRound:
    game_id: int
    game_hash: str
    crash_point: Decimal


def walk_chain(latest_hash: str, *, scheme: Scheme, game_id: int, rounds: int) -> Iterator[ChainRound]:
    """The games ``game_id``, ``game_id - 1``, ... (at most ``rounds``) recomputed from the hash
    of game ``game_id``, stopping at the first game the scheme covers."""
    hex_argument("hash", latest_hash, length=64)
    if rounds < 1:
        raise ValueError(f"rounds={rounds!r}: must be at least 1")
    if game_id < 1 or (scheme.last_game is not None and game_id > scheme.last_game) or (
        scheme.first_game is not None and game_id < scheme.first_game
    ):
        raise ValueError(
            f"game_id={game_id!r}: outside the games {scheme.name} covers "
            f"({scheme.first_game or 1} to {scheme.last_game or 'the latest'})"
        )
    lowest = max(scheme.first_game or 1, game_id - rounds + 1)
    game_hash = latest_hash.lower()
    for number in range(game_id, lowest - 1, -1):
        yield ChainRound(number, game_hash, scheme.crash_point(game_hash))
        game_hash = scheme.previous_hash(game_hash)
