from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer

from personalize import ConfigurationError, CookieState, VisitorCookie

KEY_NEW = "new-secret-0123456789-abcdefghijkl"
KEY_OLD = "old-secret-0123456789-abcdefghijkl"


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_with_and_without_user() -> None:
    jar = VisitorCookie(KEY_NEW)
    for state in (CookieState("abc"), CookieState("abc", user_id="u-42")):
        loaded = jar.load(jar.dump(state))
        assert loaded.state == state
        assert not loaded.reissue


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "a.b.c",
        "eyJ2IjoiYWJjIn0.Zm9v.YmFy",
        "x" * 5000,
        "\x00\xff\ufffd",
        "..",
        "null",
    ],
)
def test_garbage_is_no_cookie(value: str | None) -> None:
    assert VisitorCookie(KEY_NEW).load(value).state is None


def test_tampered_payload_or_signature_is_rejected() -> None:
    jar = VisitorCookie(KEY_NEW)
    value = jar.dump(CookieState("abc"))
    payload, ts, sig = value.split(".")
    forged = URLSafeTimedSerializer("attacker-key-0123456789abcdef", salt="personalize.visitor")
    assert jar.load(forged.dumps({"v": "abc", "u": "admin"})).state is None
    assert jar.load(f"{payload}x.{ts}.{sig}").state is None
    # A different signature: its first character changed (it carries 6 full bits; replacing
    # the end with "AA" was a no-op 1 time in 4,096, and the last character's low bits are
    # padding a decoder may ignore).
    other = "B" if sig[0] == "A" else "A"
    assert jar.load(f"{payload}.{ts}.{other}{sig[1:]}").state is None


def test_wrong_payload_shapes_are_rejected() -> None:
    serializer = URLSafeTimedSerializer(KEY_NEW, salt="personalize.visitor")
    jar = VisitorCookie(KEY_NEW)
    for payload in ([1, 2], {"v": 5}, {"v": ""}, {"v": "x" * 100}, {"v": "a", "u": 3}, "str"):
        assert jar.load(serializer.dumps(payload)).state is None


def test_rotation_old_key_verifies_and_asks_for_reissue() -> None:
    old_jar = VisitorCookie(KEY_OLD)
    value = old_jar.dump(CookieState("abc", "u1"))
    rotated = VisitorCookie([KEY_NEW, KEY_OLD])
    loaded = rotated.load(value)
    assert loaded.state == CookieState("abc", "u1")
    assert loaded.reissue
    # The re-issued cookie is signed with the newest key: the new key alone verifies it.
    assert VisitorCookie(KEY_NEW).load(rotated.dump(loaded.state)).state == loaded.state
    # A key that was dropped from the list no longer verifies.
    assert VisitorCookie(KEY_NEW).load(value).state is None


def test_expiry_and_refresh_after_half_life() -> None:
    clock = FakeClock()
    jar = VisitorCookie(KEY_NEW, max_age=1000, clock=clock)
    serializer = URLSafeTimedSerializer(KEY_NEW, salt="personalize.visitor")
    value = serializer.dumps({"v": "abc"})  # signed "now" (real time)
    import time

    clock.now = time.time() + 10
    assert jar.load(value).state == CookieState("abc")
    assert not jar.load(value).reissue
    clock.now = time.time() + 600  # past half its life: still valid, but refreshed
    assert jar.load(value).reissue
    clock.now = time.time() + 1001  # expired, even though the verified value is cached
    assert jar.load(value).state is None


def test_secret_validation_and_masking() -> None:
    for bad in ("short", [], [KEY_NEW, "short"], [KEY_NEW, 5]):
        with pytest.raises(ConfigurationError, match="secret_key"):
            VisitorCookie(bad)  # type: ignore[arg-type]
    jar = VisitorCookie([KEY_NEW, KEY_OLD])
    assert KEY_NEW not in repr(jar) and KEY_NEW not in repr(jar.__dict__)
    with pytest.raises(ConfigurationError):
        VisitorCookie(KEY_NEW, max_age=0)


def test_verification_cache_is_bounded() -> None:
    jar = VisitorCookie(KEY_NEW, cache_size=10)
    for i in range(50):
        jar.load(jar.dump(CookieState(f"id{i}")))
    assert len(jar._cache) == 10


@pytest.mark.parametrize("offset", [-30 * 86_400.0, 0.0, 30 * 86_400.0])
def test_a_simulated_clock_signs_and_checks_with_its_own_time(offset: float) -> None:
    """Cookies are stamped with the settings' clock, not time.time: a clock in the past (a
    simulation, a replay) accepts its own cookies and still expires them."""
    import time

    clock = FakeClock(time.time() + offset)
    jar = VisitorCookie(KEY_NEW, clock=clock, max_age=3600)
    value = jar.dump(CookieState("abc"))
    clock.now += 60
    assert jar.load(value).state == CookieState("abc")
    clock.now += 7200
    later = VisitorCookie(KEY_NEW, clock=clock, max_age=3600)  # no cached verification
    assert later.load(value).state is None


@pytest.mark.parametrize(
    "state",
    [
        CookieState("AbCdEfGhIjKlMnOpQrStUv"),
        CookieState("AbCdEfGhIjKlMnOpQrStUv", consent=True),
        CookieState("AbCdEfGhIjKlMnOpQrStUv", user_id="user-42", epoch=123456, consent=True),
        CookieState("AbCdEfGhIjKlMnOpQrStUv", user_id="ü" * 200, epoch=7),  # compresses
        CookieState("AbCdEfGhIjKlMnOpQrStUv", user_id="😀" * 256),
    ],
)
def test_values_are_signed_as_itsdangerous_signs_them(state: CookieState) -> None:
    """The one-step signer writes itsdangerous' format: the same value for the same payload
    and second (compressed where itsdangerous compresses, from 65 bytes of JSON on), and
    itsdangerous verifies it."""
    clock = FakeClock()
    jar = VisitorCookie(KEY_NEW, clock=clock)
    value = jar.dump(state)
    payload: dict[str, object] = {"v": state.visitor_id}
    if state.user_id is not None:
        payload["u"] = state.user_id
        if state.epoch:
            payload["e"] = state.epoch
    if state.consent:
        payload["c"] = 1
    assert value == jar._current.dumps(payload)
    assert value.startswith(".") == (len(state.user_id or "") >= 200)
    assert VisitorCookie(KEY_NEW, clock=clock).load(value).state == state


def test_a_value_just_signed_is_read_without_verifying_it_again() -> None:
    jar = VisitorCookie(KEY_NEW)
    value = jar.dump(CookieState("abc"))
    jar._verify = None  # type: ignore[method-assign,assignment]  # (it must not be called)
    assert jar.load(value).state == CookieState("abc")


def test_a_remembered_header_ages_like_its_value_and_forgeries_are_not_remembered() -> None:
    clock = FakeClock()
    jar = VisitorCookie(KEY_NEW, clock=clock, max_age=1000)
    header = b"theme=dark; pz_visitor=" + jar.dump(CookieState("abc")).encode()
    first = jar.read(header)
    assert first.state == CookieState("abc") and not first.reissue
    assert jar.read(header) is first  # remembered: the same answer, nothing verified again
    clock.now += 600  # past half the lifetime: re-issued
    assert jar.read(header).reissue and jar.read(header).state == CookieState("abc")
    clock.now += 500  # past the lifetime: no visitor
    assert jar.read(header).state is None
    clock.now -= 1100 + 400  # signed "in the future" beyond the allowed skew: no visitor
    assert jar.read(header).state is None
    forged = b"pz_visitor=" + jar.dump(CookieState("abc")).encode()[:-2] + b"xx"
    assert jar.read(forged).state is None and forged not in jar._found


def test_a_header_signed_with_an_old_secret_keeps_asking_for_a_new_cookie() -> None:
    old = VisitorCookie(KEY_OLD).dump(CookieState("abc"))
    jar = VisitorCookie([KEY_NEW, KEY_OLD])
    header = b"pz_visitor=" + old.encode()
    for _ in range(3):  # (remembered after the first, still re-issued)
        loaded = jar.read(header)
        assert loaded.state == CookieState("abc") and loaded.reissue
