"""Auth methods and token recovery against a real OpenBao server.

A Kubernetes login needs a Kubernetes API server to review the service account token, and
these tests start none. `test_vault_config.py` covers that method's settings and login body.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.errors import VaultAuthError
from reconciler.model import SecretState, VaultSettings
from reconciler.secrets import Secret
from reconciler.vault import AuthConfig, AuthMethod, VaultSecretStore, connect_vault
from reconciler.vault.session import VaultSession
from tests.support.openbao import OpenBaoServer

AUDIENCE = "https://github.com/acme"
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def reader(openbao: OpenBaoServer) -> tuple[str, str]:
    """A KV v2 mount holding one secret and a policy that may read its metadata and data."""
    mount = openbao.unique("auth-kv")
    openbao.enable_kv(mount, 2)
    openbao.kv_put("nylas/leyah", {"refresh_token": "rt-auth-test"}, mount=mount)
    policy = openbao.unique("reader")
    openbao.write_policy(policy, f'path "{mount}/*" {{ capabilities = ["read", "list"] }}')
    return mount, policy


def metadata_state(session: VaultSession, mount: str) -> SecretState:
    return VaultSecretStore(session, VaultSettings(mount=mount)).read_metadata("nylas/leyah").state


def approle_config(openbao: OpenBaoServer, mount: str, role_id: str, secret_id: str) -> AuthConfig:
    return AuthConfig(
        addr=openbao.addr,
        method=AuthMethod.APPROLE,
        mount=mount,
        role_id=Secret(role_id),
        secret_id=Secret(secret_id),
    )


def test_approle_login(openbao: OpenBaoServer, reader: tuple[str, str]) -> None:
    mount, policy = reader
    auth_mount = openbao.unique("approle")
    role_id, secret_id = openbao.approle("grantctl", [policy], mount=auth_mount)

    session = connect_vault(approle_config(openbao, auth_mount, role_id, secret_id))

    assert metadata_state(session, mount) is SecretState.PRESENT


def test_approle_secret_id_file(
    openbao: OpenBaoServer, reader: tuple[str, str], tmp_path: Path
) -> None:
    mount, policy = reader
    auth_mount = openbao.unique("approle")
    role_id, secret_id = openbao.approle("grantctl", [policy], mount=auth_mount)
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id + "\n")
    config = AuthConfig.from_environment(
        {
            "VAULT_ADDR": openbao.addr,
            "GRANTCTL_VAULT_AUTH": "approle",
            "GRANTCTL_VAULT_AUTH_MOUNT": auth_mount,
            "VAULT_ROLE_ID": role_id,
            "GRANTCTL_VAULT_SECRET_ID_FILE": str(secret_file),
        }
    )

    session = connect_vault(config)

    assert metadata_state(session, mount) is SecretState.PRESENT


def test_approle_wrong_secret_id(openbao: OpenBaoServer, reader: tuple[str, str]) -> None:
    auth_mount = openbao.unique("approle")
    role_id, _ = openbao.approle("grantctl", [reader[1]], mount=auth_mount)
    wrong = "00000000-1111-2222-3333-444444444444"

    with pytest.raises(VaultAuthError) as caught:
        connect_vault(approle_config(openbao, auth_mount, role_id, wrong))

    assert f"auth/{auth_mount}/login" in str(caught.value)
    assert wrong not in str(caught.value)


def test_short_ttl_token_reobtained(openbao: OpenBaoServer, reader: tuple[str, str]) -> None:
    mount, policy = reader
    auth_mount = openbao.unique("approle")
    role_id, secret_id = openbao.approle(
        "short", [policy], mount=auth_mount, token_ttl="2s", token_max_ttl="2s"
    )
    session = connect_vault(approle_config(openbao, auth_mount, role_id, secret_id))
    first_token = session.hvac.token

    assert metadata_state(session, mount) is SecretState.PRESENT
    time.sleep(2.5)  # past the token's TTL, so Vault no longer accepts it
    assert metadata_state(session, mount) is SecretState.PRESENT
    assert session.hvac.token != first_token


def test_revoked_login_token_reobtained(openbao: OpenBaoServer, reader: tuple[str, str]) -> None:
    mount, policy = reader
    auth_mount = openbao.unique("approle")
    role_id, secret_id = openbao.approle("grantctl", [policy], mount=auth_mount)
    session = connect_vault(approle_config(openbao, auth_mount, role_id, secret_id))
    first_token = session.hvac.token

    openbao.client().auth.token.revoke(first_token)

    assert metadata_state(session, mount) is SecretState.PRESENT
    assert session.hvac.token != first_token


def test_relogin_failure_stops_cleanly(openbao: OpenBaoServer, reader: tuple[str, str]) -> None:
    mount, policy = reader
    auth_mount = openbao.unique("approle")
    # A secret id usable once: the first login works, the second is rejected.
    role_id, secret_id = openbao.approle("once", [policy], mount=auth_mount, secret_id_num_uses="1")
    session = connect_vault(approle_config(openbao, auth_mount, role_id, secret_id))
    openbao.client().auth.token.revoke(session.hvac.token)

    with pytest.raises(VaultAuthError) as caught:
        metadata_state(session, mount)

    assert f"auth/{auth_mount}/login" in str(caught.value)
    assert secret_id not in str(caught.value)


def test_token_method_revoked(openbao: OpenBaoServer, reader: tuple[str, str]) -> None:
    mount, policy = reader
    token = openbao.create_token([policy])
    session = connect_vault(AuthConfig(addr=openbao.addr, token=Secret(token)))
    openbao.client().auth.token.revoke(token)

    with pytest.raises(VaultAuthError) as caught:
        metadata_state(session, mount)

    assert "VAULT_TOKEN" in caught.value.hint
    assert token not in str(caught.value)


def test_token_method_invalid_at_connect(openbao: OpenBaoServer) -> None:
    with pytest.raises(VaultAuthError) as caught:
        connect_vault(AuthConfig(addr=openbao.addr, token=Secret("not-a-real-token")))

    assert "invalid" in caught.value.message


def test_token_method_renewed_near_expiry(openbao: OpenBaoServer, reader: tuple[str, str]) -> None:
    mount, policy = reader
    token = openbao.create_token([policy], ttl="4s", explicit_max_ttl="1h")
    session = connect_vault(AuthConfig(addr=openbao.addr, token=Secret(token)))

    time.sleep(3.3)  # inside the last second of the TTL, so this request renews first
    renewed_state = metadata_state(session, mount)
    time.sleep(1.0)  # past the original TTL: only a renewed token still works
    later_state = metadata_state(session, mount)

    assert renewed_state is SecretState.PRESENT
    assert later_state is SecretState.PRESENT
    assert session.hvac.token == token


def rsa_key_pair() -> tuple[Any, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public_pem.decode()


def github_token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "repo:acme/grants:ref:refs/heads/main",
        "repository": "acme/grants",
        "ref": "refs/heads/main",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
    }
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="RS256")


@pytest.fixture
def jwt_auth(openbao: OpenBaoServer, reader: tuple[str, str]) -> tuple[str, Any]:
    """A jwt auth mount that trusts a test key, with a GitHub-Actions-style role `apply`."""
    key, public_pem = rsa_key_pair()
    auth_mount = openbao.enable_auth("jwt")
    root = openbao.client()
    root.adapter.post(
        f"/v1/auth/{auth_mount}/config",
        json={"jwt_validation_pubkeys": [public_pem], "bound_issuer": ISSUER},
    )
    root.adapter.post(
        f"/v1/auth/{auth_mount}/role/apply",
        json={
            "role_type": "jwt",
            "bound_audiences": [AUDIENCE],
            "user_claim": "repository",
            "bound_claims": {"repository": "acme/grants", "ref": "refs/heads/main"},
            "token_policies": [reader[1]],
            "token_ttl": "5m",
        },
    )
    return auth_mount, key


def test_jwt_login(openbao: OpenBaoServer, reader: tuple[str, str], jwt_auth: Any) -> None:
    auth_mount, key = jwt_auth
    config = AuthConfig(
        addr=openbao.addr,
        method=AuthMethod.JWT,
        mount=auth_mount,
        role="apply",
        jwt=Secret(github_token(key)),
    )

    session = connect_vault(config)

    assert metadata_state(session, reader[0]) is SecretState.PRESENT


def test_jwt_login_from_file(
    openbao: OpenBaoServer, reader: tuple[str, str], jwt_auth: Any, tmp_path: Path
) -> None:
    auth_mount, key = jwt_auth
    token_file = tmp_path / "id-token"
    token_file.write_text(github_token(key))
    config = AuthConfig.from_environment(
        {
            "VAULT_ADDR": openbao.addr,
            "GRANTCTL_VAULT_AUTH": "jwt",
            "GRANTCTL_VAULT_AUTH_MOUNT": auth_mount,
            "GRANTCTL_VAULT_ROLE": "apply",
            "GRANTCTL_VAULT_JWT_FILE": str(token_file),
        }
    )

    session = connect_vault(config)

    assert metadata_state(session, reader[0]) is SecretState.PRESENT


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://github.com/someone-else"},
        {"ref": "refs/heads/feature"},
        {"repository": "mallory/grants"},
    ],
    ids=["audience", "ref", "repository"],
)
def test_jwt_login_rejects_claims(
    openbao: OpenBaoServer, jwt_auth: Any, claims: dict[str, str]
) -> None:
    auth_mount, key = jwt_auth
    token = github_token(key, **claims)
    config = AuthConfig(
        addr=openbao.addr, method=AuthMethod.JWT, mount=auth_mount, role="apply", jwt=Secret(token)
    )

    with pytest.raises(VaultAuthError) as caught:
        connect_vault(config)

    assert f"auth/{auth_mount}/login" in str(caught.value)
    assert token not in str(caught.value)


def test_jwt_untrusted_key(openbao: OpenBaoServer, jwt_auth: Any) -> None:
    auth_mount, _ = jwt_auth
    other_key, _ = rsa_key_pair()
    config = AuthConfig(
        addr=openbao.addr,
        method=AuthMethod.JWT,
        mount=auth_mount,
        role="apply",
        jwt=Secret(github_token(other_key)),
    )

    with pytest.raises(VaultAuthError):
        connect_vault(config)
