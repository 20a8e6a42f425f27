"""AuthConfig.from_environment and login request bodies; no server needed.

The Kubernetes auth method is covered here only at the settings and request-body level: a
real login needs a Kubernetes API server to review the service account token.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from reconciler.cli_reconcile import reconcile_command
from reconciler.commands.apply import apply_command
from reconciler.commands.audit import audit_command
from reconciler.commands.plan import plan_command
from reconciler.errors import ConfigError
from reconciler.secrets import Secret
from reconciler.vault import AuthConfig, AuthMethod
from reconciler.vault.auth import DEFAULT_KUBERNETES_TOKEN_FILE, login_request

ADDR = "http://127.0.0.1:8200"


def test_token_defaults() -> None:
    config = AuthConfig.from_environment({"VAULT_ADDR": ADDR, "VAULT_TOKEN": "s.token-value"})

    assert config.method is AuthMethod.TOKEN
    assert isinstance(config.token, Secret)
    assert config.token.reveal() == "s.token-value"
    assert "s.token-value" not in repr(config)


def test_bao_variables_accepted() -> None:
    config = AuthConfig.from_environment(
        {"BAO_ADDR": ADDR, "BAO_TOKEN": "t", "BAO_NAMESPACE": "team-a"}
    )

    assert config.addr == ADDR
    assert config.namespace == "team-a"


def test_vault_variables_win() -> None:
    config = AuthConfig.from_environment(
        {"VAULT_ADDR": ADDR, "BAO_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "t"}
    )

    assert config.addr == ADDR


def test_overrides_win_unless_none() -> None:
    config = AuthConfig.from_environment(
        {"VAULT_ADDR": ADDR, "VAULT_TOKEN": "t", "VAULT_NAMESPACE": "env-ns"},
        namespace="flag-ns",
        role=None,
        addr="http://127.0.0.1:9999",
    )

    assert config.namespace == "flag-ns"
    assert config.addr == "http://127.0.0.1:9999"


def test_unknown_override_rejected() -> None:
    with pytest.raises(TypeError):
        AuthConfig.from_environment({"VAULT_ADDR": ADDR, "VAULT_TOKEN": "t"}, colour="red")


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "VAULT_ADDR"),
        ({"VAULT_ADDR": ADDR}, "VAULT_TOKEN"),
        ({"VAULT_ADDR": "vault:8200", "VAULT_TOKEN": "t"}, "VAULT_ADDR"),
        ({"VAULT_ADDR": ADDR, "GRANTCTL_VAULT_AUTH": "ldap"}, "GRANTCTL_VAULT_AUTH"),
        ({"VAULT_ADDR": ADDR, "GRANTCTL_VAULT_AUTH": "approle"}, "GRANTCTL_VAULT_ROLE_ID"),
        (
            {"VAULT_ADDR": ADDR, "GRANTCTL_VAULT_AUTH": "approle", "VAULT_ROLE_ID": "r"},
            "GRANTCTL_VAULT_SECRET_ID",
        ),
        ({"VAULT_ADDR": ADDR, "GRANTCTL_VAULT_AUTH": "kubernetes"}, "GRANTCTL_VAULT_ROLE"),
        ({"VAULT_ADDR": ADDR, "GRANTCTL_VAULT_AUTH": "jwt"}, "GRANTCTL_VAULT_JWT"),
        ({"VAULT_ADDR": ADDR, "VAULT_TOKEN": "t", "GRANTCTL_VAULT_TIMEOUT": "soon"}, "TIMEOUT"),
        ({"VAULT_ADDR": ADDR, "VAULT_TOKEN": "t", "VAULT_CACERT": "/nonexistent.pem"}, "CACERT"),
    ],
    ids=[
        "no-addr",
        "no-token",
        "addr-not-url",
        "unknown-method",
        "approle-no-role-id",
        "approle-no-secret-id",
        "kubernetes-no-role",
        "jwt-no-token",
        "timeout-not-number",
        "cacert-missing",
    ],
)
def test_missing_setting_named(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AuthConfig.from_environment(environ)

    assert variable in str(caught.value)


def test_skip_verify_env_ignored(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": "t", "VAULT_SKIP_VERIFY": "true"}

    with caplog.at_level(logging.WARNING):
        config = AuthConfig.from_environment(environ)

    assert config.tls_skip_verify is False
    assert "--tls-skip-verify" in caplog.text


def test_skip_verify_warning_names_real_flag(caplog: pytest.LogCaptureFixture) -> None:
    """The flag the VAULT_SKIP_VERIFY warning names is an option of every Vault command."""
    environ = {"VAULT_ADDR": ADDR, "VAULT_TOKEN": "t", "VAULT_SKIP_VERIFY": "1"}
    with caplog.at_level(logging.WARNING):
        AuthConfig.from_environment(environ)
    named = set(re.findall(r"--[a-z-]+", caplog.text))
    assert named == {"--tls-skip-verify"}
    for command in (plan_command, apply_command, audit_command, reconcile_command):
        options = {option for parameter in command.params for option in parameter.opts}
        assert named <= options, command.name


def test_skip_verify_by_flag() -> None:
    config = AuthConfig.from_environment(
        {"VAULT_ADDR": ADDR, "VAULT_TOKEN": "t"}, tls_skip_verify=True
    )

    assert config.tls_skip_verify is True


def test_approle_login_body() -> None:
    config = AuthConfig.from_environment(
        {
            "VAULT_ADDR": ADDR,
            "GRANTCTL_VAULT_AUTH": "approle",
            "GRANTCTL_VAULT_ROLE_ID": "role-1",
            "VAULT_SECRET_ID": "secret-1",
        }
    )

    assert config.auth_mount == "approle"
    assert login_request(config) == {"role_id": "role-1", "secret_id": "secret-1"}


def test_kubernetes_login_body(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sa-jwt-one\n")
    environ = {
        "VAULT_ADDR": ADDR,
        "GRANTCTL_VAULT_AUTH": "kubernetes",
        "GRANTCTL_VAULT_ROLE": "grantctl",
        "GRANTCTL_VAULT_AUTH_MOUNT": "k8s-prod/",
        "GRANTCTL_VAULT_KUBERNETES_TOKEN_FILE": str(token_file),
    }
    config = AuthConfig.from_environment(environ)

    first = login_request(config)
    token_file.write_text("sa-jwt-rotated")  # the kubelet rotates projected tokens
    second = login_request(config)

    assert config.auth_mount == "k8s-prod"
    assert first == {"role": "grantctl", "jwt": "sa-jwt-one"}
    assert second["jwt"] == "sa-jwt-rotated"


def test_kubernetes_default_token_file() -> None:
    config = AuthConfig.from_environment(
        {"VAULT_ADDR": ADDR, "GRANTCTL_VAULT_AUTH": "kubernetes", "GRANTCTL_VAULT_ROLE": "r"}
    )

    assert config.kubernetes_token_file == DEFAULT_KUBERNETES_TOKEN_FILE


def test_missing_token_file_named(tmp_path: Path) -> None:
    config = AuthConfig.from_environment(
        {
            "VAULT_ADDR": ADDR,
            "GRANTCTL_VAULT_AUTH": "jwt",
            "GRANTCTL_VAULT_JWT_FILE": str(tmp_path / "absent"),
        }
    )

    with pytest.raises(ConfigError) as caught:
        login_request(config)

    assert "GRANTCTL_VAULT_JWT_FILE" in caught.value.message
    assert str(tmp_path / "absent") in caught.value.message


def test_jwt_without_role_uses_default() -> None:
    config = AuthConfig.from_environment(
        {"VAULT_ADDR": ADDR, "GRANTCTL_VAULT_AUTH": "JWT", "GRANTCTL_VAULT_JWT": "header.body.sig"}
    )

    assert login_request(config) == {"jwt": "header.body.sig"}
