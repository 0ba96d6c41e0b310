"""``crashlog.fairness`` without a database: the operators' schemes (chains.py) and Spribe's popups
(spribe.py). (``crashlog verify`` against a database: tests/integration/test_verify.py.)

Public vectors are cited where they come from. Where no public (hash, crash point) pair was
found (bustabit v1, Stake), the tests check the rules the operator's published code states
(which era hashes text or bytes, the instant-bust rule) and say so; real game hashes reaching
the published terminating hashes confirm each chain step.
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest
from helpers.fairness import CLASSIC_HASH, spribe_record

from crashlog import fairness
from crashlog.fairness import (
    bustabit_crash_point,
    bustabit_previous_hash,
    check_spribe_record,
    multiplier_from_hex,
    stake_crash_point,
)

# bustabit v2 (the chain of the second seeding event, games 1 to 10,000,000): game hashes
# and their busts from the test suite of an independent Rust verifier,
# github.com/vladignatyev/bustabit-rust tests/lib.rs (commit 25a289e0b9810f9eba2af08522321554e080a9d8,
# should_return_correct_outcome), and the example in its src/lib.rs doc comment (commit
# 22ed3cb7967bd35d75b415f88130045057288d5c: "will print 2055.9").
V2_BUSTS = [
    ("b2acd37fbdb5509926ab5d7329704c840f8467266c90019682f3b260a029bdba", "1.26"),
    ("82886b71b3b26e4b162bbdf4e7024f50f6a7250c207fb9ce497ad56a3e7e700a", "1.18"),
    ("cb7da3ec6cb68d4c0fccd9640641cabcac641f12ff97e7314ec3e074ac0981e0", "1.26"),
    ("b459e199bac1342bf22d7aa6d19180aff35ab69f453d809949aab3e8d5e545aa", "3.77"),
    ("5d07719b61b0abb6f1c3b17b1d69c838278f87f9b5e75077026e5fedf96c2eb2", "2055.90"),
]


@pytest.mark.parametrize(("game_hash", "bust"), V2_BUSTS)
def test_bustabit_v2_busts_match_the_published_ones(game_hash: str, bust: str) -> None:
    assert bustabit_crash_point(game_hash, era="v2") == Decimal(bust)


def test_bustabit_v2_chain_walks_back_through_the_published_hashes() -> None:
    # Same file, should_generate_correct_previous_games: each hash's predecessor in the chain.
    hashes = [h for h, _ in V2_BUSTS[:4]]
    for later, earlier in zip(hashes, hashes[1:]):
        assert bustabit_previous_hash(later, era="v2") == earlier


def test_v1_and_v2_hash_the_text_classic_hashes_the_bytes() -> None:
    # v1 lib.js genGameHash and the v2 seeding post: SHA-256 of the hash's hex text; the
    # chain of the third seeding event (bustabit/verifier verifier.worker.ts): of its bytes.
    h = V2_BUSTS[0][0]
    assert bustabit_previous_hash(h, era="v1") == hashlib.sha256(h.encode()).hexdigest()
    assert bustabit_previous_hash(h, era="classic") == hashlib.sha256(bytes.fromhex(h)).hexdigest()


def test_bustabit_classic_bust_matches_the_published_one() -> None:
    assert bustabit_crash_point(CLASSIC_HASH) == Decimal("38.65")
    assert bustabit_crash_point(CLASSIC_HASH, era="classic") == Decimal("38.65")
    # bustabit/verifier utils/math.ts: key = the salt's text, message = the hash's bytes.
    mac = hmac.new(fairness.BUSTABIT_CLASSIC_SALT.encode(), bytes.fromhex(CLASSIC_HASH), hashlib.sha256)
    assert multiplier_from_hex(mac.hexdigest()) == Decimal("38.65")


def test_a_published_game_number_is_found_on_bustabits_current_chain() -> None:
    # github.com/andreasviner/BustaBitPyv2 validate.py (commit
    # 2d5da05c3e4ec42921c10aafbabaefde05d5153f): game_nr 10022538 has this hash. (Its bust
    # needs Vx's signature, which crashlog does not compute: only the chain is checked.)
    game = "61729963ca9d3e3292a43c310444e530c62662bd1647e8158897ea7537bed229"
    assert fairness.locate_in_chain(game, scheme=fairness.SCHEMES["bustabit-classic"]) == 10_022_538


def test_a_hash_off_the_chain_is_not_located() -> None:
    stranger = hashlib.sha256(b"not a game").hexdigest()
    for scheme in fairness.SCHEMES.values():
        assert fairness.locate_in_chain(stranger, scheme=scheme, max_steps=2000) is None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scheme", "game_hash", "number"),
    [
        # The v2 games above are on the chain of topic 2807542 (terminating hash 86728f5f...).
        ("bustabit-v2", V2_BUSTS[0][0], 1_394_728),
        ("bustabit-v2", V2_BUSTS[4][0], 1_398_378),
        ("bustabit-classic", CLASSIC_HASH, 13_303_000),
        # A Stake game hash as a public crash-analysis script carries it (its source could not
        # be attributed; it needs no trust: it reaches the terminating hash Stake published in
        # bitcointalk topic 5162888, through SHA-256 of each hash's hex text).
        ("stake", "1f93980af45e9f01a6dacf9d203eb568065994fd7e2039a771dd86f6a99e36e6", 4_324_895),
    ],
)
def test_real_game_hashes_reach_their_published_terminating_hash(
    scheme: str, game_hash: str, number: int
) -> None:
    assert fairness.locate_in_chain(game_hash, scheme=fairness.SCHEMES[scheme]) == number


def test_v1_busts_one_game_in_101_when_the_hmac_is_divisible_by_101() -> None:
    # Unverified against bustabit's own data (no public v1 pair found); the rule is
    # bustabit/v1-gameserver server/lib.js crashPointFromHash.
    instant = 0
    for i in range(3000):
        h = hashlib.sha256(f"v1 sample {i}".encode()).hexdigest()
        mac = hmac.new(h.encode(), fairness.BUSTABIT_V1_CLIENT_SEED.encode(), hashlib.sha256)
        divisible = int(mac.hexdigest(), 16) % 101 == 0
        point = bustabit_crash_point(h, era="v1")
        assert (point == Decimal("1.00")) if divisible else (point >= Decimal("1.00"))
        instant += divisible
    assert 10 <= instant <= 55  # about 3000 / 101 = 30


def test_multiplier_from_hex_is_the_common_52_bit_mapping() -> None:
    assert multiplier_from_hex("0" * 13) == Decimal("1.00")  # 99 / 1 = 0.99, at least 1.00
    assert multiplier_from_hex("8" + "0" * 12) == Decimal("1.98")  # X = 1/2: 99 / 0.5
    assert multiplier_from_hex("8" + "0" * 12, rtp_percent=97) == Decimal("1.94")
    assert multiplier_from_hex("c" + "0" * 63) == Decimal("3.96")  # only 13 digits count
    assert multiplier_from_hex("f" * 13) == Decimal("4458563631096791.04")  # 99 * 2^52 cents


def test_stake_follows_its_seeding_post() -> None:
    # Unverified against Stake's own data (no public pair found): bitcointalk topic 5162888,
    # key = the game hash, message = bitcoin block 584,500's hash, the first 8 hex digits.
    h = V2_BUSTS[0][0]
    n = int(hmac.new(h.encode(), fairness.STAKE_SALT.encode(), hashlib.sha256).hexdigest()[:8], 16)
    exact = max(1.0, (2**32 / (n + 1)) * 0.99)
    point = stake_crash_point(h)
    assert point <= Decimal(exact) < point + Decimal("0.01")
    assert fairness.stake_previous_hash(h) == hashlib.sha256(h.encode()).hexdigest()


@pytest.mark.parametrize(
    ("call", "argument", "value"),
    [
        (lambda: bustabit_crash_point("xyz" * 21 + "a"), "game_hash", "xyz"),
        (lambda: bustabit_crash_point("ab" * 31), "game_hash", "abab"),
        (lambda: bustabit_crash_point("ab" * 32, era="v3"), "era", "v3"),
        (lambda: bustabit_previous_hash("ab" * 32, era="Classic"), "era", "Classic"),
        (lambda: stake_crash_point("0x" + "a" * 62), "game_hash", "0x"),
        (lambda: multiplier_from_hex("abc"), "hex_digest", "abc"),
        (lambda: multiplier_from_hex("a" * 13, rtp_percent=120), "rtp_percent", "120"),
    ],
)
def test_bad_input_names_the_argument_and_the_value(call, argument: str, value: str) -> None:
    with pytest.raises(ValueError) as error:
        call()
    assert f"{argument}=" in str(error.value) and value in str(error.value)


# -- Spribe ----------------------------------------------------------------------------------


def statuses(record: dict[str, object]) -> dict[str, str]:
    return {f.check: f.status for f in check_spribe_record(record)}


def test_a_consistent_popup_passes_every_checkable_step_and_claims_no_more() -> None:
    assert statuses(spribe_record()) == {
        "server seed commitment": "ok",
        "combined SHA-512": "ok",
        "hex from hash": "ok",
        "hex to decimal": "ok",
        "result from hash": "not verifiable (unpublished)",
    }


def test_a_broken_commitment_or_decimal_is_a_mismatch() -> None:
    found = statuses(spribe_record(server_seed_sha256="00" * 32, decimal=12345))
    assert found["server seed commitment"] == "mismatch"
    assert found["hex to decimal"] == "mismatch"
    assert found["result from hash"] == "not verifiable (unpublished)"


def test_an_other_merge_order_is_unconfirmed_not_a_mismatch() -> None:
    found = statuses(spribe_record(client_seed_1="4fG7hJ9kL2-changed"))
    assert found["combined SHA-512"] == "unconfirmed"
    assert statuses(spribe_record(server_seed=None))["server seed commitment"] == "not recorded"
