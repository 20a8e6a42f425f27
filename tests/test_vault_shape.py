"""connect_settings: provider keys, ports, unknown keys, and no value in any error."""

from __future__ import annotations

import pytest

from reconciler.errors import SecretShapeError
from reconciler.model import Provider
from reconciler.secrets import Secret
from reconciler.vault import connect_settings

CANARY = "canary-value-7f3a9c"


def secrets(**values: str) -> dict[str, Secret]:
    return {key: Secret(value) for key, value in values.items()}


def imap_secret(**changes: str) -> dict[str, Secret]:
    values = {
        "imap_username": "support@example.com",
        "imap_password": CANARY,
        "imap_host": "imap.example.com",
        "imap_port": "993",
        "smtp_host": "smtp.example.com",
        "smtp_port": "465",
    }
    values.update(changes)
    return secrets(**values)


def shape_error(provider: Provider, data: dict[str, Secret]) -> SecretShapeError:
    with pytest.raises(SecretShapeError) as caught:
        connect_settings(
            provider, data, account="support", path="secret/nylas/support", credential_id=None
        )
    return caught.value


def test_oauth_with_credential_id() -> None:
    settings = connect_settings(
        Provider.MICROSOFT,
        secrets(refresh_token=CANARY),
        account="leyah",
        path="secret/nylas/leyah",
        credential_id="cred-123",
    )

    assert isinstance(settings["refresh_token"], Secret)
    assert settings["credential_id"] == "cred-123"


def test_credential_id_only_oauth() -> None:
    settings = connect_settings(
        Provider.IMAP, imap_secret(), account="support", path="p", credential_id="cred-123"
    )

    assert "credential_id" not in settings


def test_imap_ports_become_int() -> None:
    settings = connect_settings(
        Provider.IMAP, imap_secret(), account="support", path="p", credential_id=None
    )

    assert settings["imap_port"] == 993
    assert settings["smtp_port"] == 465
    assert isinstance(settings["imap_password"], Secret)


def test_missing_keys_named() -> None:
    data = imap_secret()
    del data["smtp_host"]
    del data["imap_port"]

    error = shape_error(Provider.IMAP, data)

    assert "'smtp_host'" in error.message
    assert "'imap_port'" in error.message
    assert "support" in error.message
    assert "secret/nylas/support" in error.message


def test_empty_key_named() -> None:
    error = shape_error(Provider.GOOGLE, secrets(refresh_token="   "))

    assert "empty key 'refresh_token'" in error.message


@pytest.mark.parametrize("port", ["0", "70000", "-1", "9x3", CANARY, "\uff19\uff19\uff13"])
def test_bad_port_value_hidden(port: str) -> None:
    error = shape_error(Provider.IMAP, imap_secret(imap_port=port))

    assert "'imap_port'" in error.message
    assert port not in str(error)


def test_unknown_keys_rejected() -> None:
    error = shape_error(Provider.GOOGLE, secrets(refresh_token="rt", client_secret=CANARY))

    assert "'client_secret'" in error.message
    assert "refresh_token" in error.hint


def test_no_value_in_any_error() -> None:
    data = {
        "imap_password": Secret(CANARY),
        "imap_port": Secret(CANARY + "-port"),
        "notes": Secret(CANARY + "-notes"),
        "smtp_host": Secret(""),
    }

    error = shape_error(Provider.IMAP, data)

    assert CANARY not in str(error)
    assert CANARY not in repr(error)
    assert CANARY not in error.hint


def test_every_problem_reported() -> None:
    data = {"ews_username": Secret("u"), "ews_port": Secret("x"), "extra": Secret("e")}

    error = shape_error(Provider.EWS, data)

    assert "missing keys 'email', 'ews_password'" in error.message
    assert "'ews_port'" in error.message
    assert "'extra'" in error.message


def test_bad_ports_sentence() -> None:
    error = shape_error(Provider.IMAP, imap_secret(imap_port="0", smtp_port="x"))

    assert "'imap_port' and 'smtp_port' must be port numbers from 1 to 65535" in error.message


def test_bad_port_singular() -> None:
    error = shape_error(Provider.IMAP, imap_secret(imap_port="0"))

    assert "'imap_port' must be a port number from 1 to 65535" in error.message


def test_hint_article_before_vowel() -> None:
    error = shape_error(Provider.IMAP, imap_secret(imap_port="0"))

    assert error.hint.startswith("an imap secret needs")
