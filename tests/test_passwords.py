"""Editor password hashes (scrypt) and `personalize hash-password`."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from personalize.cli import main
from personalize.web.admin.passwords import hash_password, is_password_hash, verify_password

FAST = 2**10  # scrypt cost for tests; the default is 2**15


def test_hash_verifies_only_the_same_password() -> None:
    hashed = hash_password("a long editor password", n=FAST)
    assert verify_password("a long editor password", hashed)
    assert not verify_password("a long editor passwor", hashed)
    assert not verify_password("", hashed)


def test_hashes_are_salted_and_carry_their_parameters() -> None:
    one, two = (
        hash_password("same password here", n=FAST),
        hash_password("same password here", n=FAST),
    )
    assert one != two
    scheme, n, r, p, _salt, _key = one.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(FAST), "8", "1")
    assert is_password_hash(one)
    # Raising the cost later does not invalidate existing hashes.
    assert verify_password("same password here", hash_password("same password here", n=2**11))


def test_default_cost() -> None:
    assert hash_password("x" * 12).split("$")[1] == str(2**15)


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "plaintext-password",
        "scrypt$1024$8$1$!!!$!!!",
        "scrypt$1000$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",  # n not a power of two
        "scrypt$4194304$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",  # n too large
        "bcrypt$1024$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$1024$8$1$c2FsdA",
    ],
)
def test_malformed_hashes_never_match(hashed: str) -> None:
    assert verify_password("anything at all", hashed) is False


def test_refuses_empty_and_huge_passwords() -> None:
    with pytest.raises(ValueError):
        hash_password("")
    with pytest.raises(ValueError):
        hash_password("x" * 5000, n=FAST)
    assert not verify_password("x" * 5000, hash_password("x" * 12, n=FAST))


def test_cli_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a long editor password\n"))
    assert main(["hash-password", "--stdin"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("a long editor password", printed)
    assert "a long editor password" not in printed


def test_cli_asks_twice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["a long editor password", "a long editor password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("personalize.web.admin.passwords.has_terminal", lambda: True)
    assert main(["hash-password"]) == 0
    assert verify_password("a long editor password", capsys.readouterr().out.strip())


def test_cli_refuses_mismatch_and_short(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["a long editor password", "another long password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("personalize.web.admin.passwords.has_terminal", lambda: True)
    assert main(["hash-password"]) == 2
    assert "differ" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["hash-password", "--stdin"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "at least 12" in captured.err


def test_cli_without_a_terminal_fails_loudly_and_points_at_stdin() -> None:
    """As in `HASH="$(personalize hash-password)"` run by a script: no terminal to ask on."""
    done = subprocess.run(
        [sys.executable, "-m", "personalize.cli", "hash-password"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,  # no controlling terminal, as under cron or CI
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "no terminal to ask for the password on" in done.stderr
    assert "| personalize hash-password --stdin" in done.stderr


def test_cli_end_of_input_is_not_a_silent_cancel(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_input(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", no_input)
    monkeypatch.setattr("personalize.web.admin.passwords.has_terminal", lambda: True)
    assert main(["hash-password"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no password was typed" in captured.err
    assert "--stdin" in captured.err
