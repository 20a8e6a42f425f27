"""VaultSecretStore against a real OpenBao server: KV v1 and v2, metadata, versions, denials."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from reconciler.errors import VaultError, VaultPermissionError
from reconciler.model import SecretState, VaultSettings
from reconciler.secrets import Secret
from reconciler.vault import AuthConfig, VaultSecretStore, connect_vault
from reconciler.vault.kv import check_path, parse_vault_time, version_from_metadata
from tests.support.openbao import OpenBaoServer


def store_for(
    openbao: OpenBaoServer, mount: str, kv_version: int = 2, token: str | None = None
) -> VaultSecretStore:
    config = AuthConfig(addr=openbao.addr, token=Secret(token or openbao.root_token))
    session = connect_vault(config, backoff_s=0.01)
    return VaultSecretStore(session, VaultSettings(mount=mount, kv_version=kv_version))


@pytest.fixture
def kv2_mount(openbao: OpenBaoServer) -> str:
    mount = openbao.unique("accounts")
    openbao.enable_kv(mount, 2)
    return mount


@pytest.fixture
def kv1_mount(openbao: OpenBaoServer) -> str:
    mount = openbao.unique("legacy")
    openbao.enable_kv(mount, 1)
    return mount


def test_kv2_metadata_present(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("nylas/prod/leyah", {"refresh_token": "rt-one"}, mount=kv2_mount)
    openbao.kv_put("nylas/prod/leyah", {"refresh_token": "rt-two"}, mount=kv2_mount)

    version = store_for(openbao, kv2_mount).read_metadata("nylas/prod/leyah")

    assert version.state is SecretState.PRESENT
    assert version.version == 2
    assert version.updated_time
    assert version.path == "nylas/prod/leyah"


def test_kv2_metadata_missing(openbao: OpenBaoServer, kv2_mount: str) -> None:
    version = store_for(openbao, kv2_mount).read_metadata("nylas/prod/nobody")

    assert version.state is SecretState.MISSING
    assert version.version is None


def test_kv2_metadata_deleted_current(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("a/deleted", {"refresh_token": "x"}, mount=kv2_mount)
    openbao.kv_put("a/deleted", {"refresh_token": "y"}, mount=kv2_mount)
    openbao.bao("kv", "delete", f"-mount={kv2_mount}", "a/deleted")

    version = store_for(openbao, kv2_mount).read_metadata("a/deleted")

    assert version.state is SecretState.DELETED
    assert version.version == 2


def test_kv2_metadata_destroyed_current(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("a/destroyed", {"refresh_token": "x"}, mount=kv2_mount)
    openbao.bao("kv", "destroy", f"-mount={kv2_mount}", "-versions=1", "a/destroyed")

    version = store_for(openbao, kv2_mount).read_metadata("a/destroyed")

    assert version.state is SecretState.DESTROYED
    assert version.version == 1


def test_kv2_metadata_scheduled_deletion_present() -> None:
    metadata = {
        "current_version": 3,
        "updated_time": "2030-01-01T00:00:00.123456789Z",
        "versions": {"3": {"deletion_time": "2999-01-01T00:00:00Z", "destroyed": False}},
    }

    version = version_from_metadata("p", metadata)

    assert version.state is SecretState.PRESENT
    assert version.version == 3


def test_vault_time_nanoseconds() -> None:
    moment = parse_vault_time("2026-12-04T19:50:22.90468614Z")

    assert moment is not None
    assert moment.microsecond == 904686
    assert moment.utcoffset() is not None


def test_kv2_read_pinned_version(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("pinned", {"refresh_token": "first-token"}, mount=kv2_mount)
    openbao.kv_put("pinned", {"refresh_token": "second-token"}, mount=kv2_mount)
    store = store_for(openbao, kv2_mount)

    first = store.read_secret("pinned", 1)
    current = store.read_secret("pinned", None)

    assert first["refresh_token"].reveal() == "first-token"
    assert current["refresh_token"].reveal() == "second-token"
    assert isinstance(first["refresh_token"], Secret)


def test_kv2_read_deleted_pinned_version(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("gone", {"refresh_token": "x"}, mount=kv2_mount)
    openbao.bao("kv", "delete", f"-mount={kv2_mount}", "-versions=1", "gone")

    with pytest.raises(VaultError) as caught:
        store_for(openbao, kv2_mount).read_secret("gone", 1)

    assert "version 1" in caught.value.message
    assert "deleted" in caught.value.message
    assert "plan" in caught.value.hint


def test_kv2_read_destroyed_pinned_version(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("burnt", {"refresh_token": "x"}, mount=kv2_mount)
    openbao.kv_put("burnt", {"refresh_token": "y"}, mount=kv2_mount)
    openbao.bao("kv", "destroy", f"-mount={kv2_mount}", "-versions=1", "burnt")

    with pytest.raises(VaultError) as caught:
        store_for(openbao, kv2_mount).read_secret("burnt", 1)

    assert "destroyed" in caught.value.message
    assert "plan" in caught.value.hint


def test_kv2_read_missing_path(openbao: OpenBaoServer, kv2_mount: str) -> None:
    with pytest.raises(VaultError) as caught:
        store_for(openbao, kv2_mount).read_secret("nowhere", None)

    assert "not found" in caught.value.message
    assert caught.value.path == f"{kv2_mount}/data/nowhere"


def test_kv2_numbers_become_text(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("imap", {"imap_port": 993, "imap_host": "imap.example.com"}, mount=kv2_mount)

    data = store_for(openbao, kv2_mount).read_secret("imap", None)

    assert data["imap_port"].reveal() == "993"
    assert data["imap_host"].reveal() == "imap.example.com"


def test_metadata_policy_denies_data(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("nylas/prod/leyah", {"refresh_token": "plan-must-not-see"}, mount=kv2_mount)
    policy = openbao.unique("plan")
    openbao.write_policy(
        policy,
        f'path "{kv2_mount}/metadata/nylas/prod/*" {{ capabilities = ["read", "list"] }}',
    )
    store = store_for(openbao, kv2_mount, token=openbao.create_token([policy]))

    version = store.read_metadata("nylas/prod/leyah")
    with pytest.raises(VaultPermissionError) as caught:
        store.read_secret("nylas/prod/leyah", version.version)

    assert version.state is SecretState.PRESENT
    assert caught.value.path == f"{kv2_mount}/data/nylas/prod/leyah"
    assert caught.value.capability == "read"
    assert f"{kv2_mount}/data/nylas/prod/leyah" in str(caught.value)
    assert "plan-must-not-see" not in str(caught.value)


def test_denied_metadata_is_state(openbao: OpenBaoServer, kv2_mount: str) -> None:
    openbao.kv_put("team-a/one", {"refresh_token": "x"}, mount=kv2_mount)
    policy = openbao.unique("elsewhere")
    openbao.write_policy(
        policy, f'path "{kv2_mount}/metadata/team-b/*" {{ capabilities = ["read"] }}'
    )
    store = store_for(openbao, kv2_mount, token=openbao.create_token([policy]))

    version = store.read_metadata("team-a/one")

    assert version.state is SecretState.DENIED
    assert f"{kv2_mount}/metadata/team-a/one" in version.detail
    assert '"read"' in version.detail


def test_metadata_many_concurrent(openbao: OpenBaoServer, kv2_mount: str) -> None:
    paths = [f"bulk/account-{index}" for index in range(25)]
    for path in paths[:20]:
        openbao.kv_put(path, {"refresh_token": "x"}, mount=kv2_mount)
    config = AuthConfig(addr=openbao.addr, token=Secret(openbao.root_token))
    store = VaultSecretStore(connect_vault(config), VaultSettings(mount=kv2_mount), parallelism=4)

    versions = store.read_metadata_many(paths)

    assert list(versions) == paths
    assert {versions[path].state for path in paths[:20]} == {SecretState.PRESENT}
    assert {versions[path].state for path in paths[20:]} == {SecretState.MISSING}


def test_metadata_many_bad_path_sends_nothing(
    openbao: OpenBaoServer, kv2_mount: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One invalid path among many is reported before the first read goes out."""
    store = store_for(openbao, kv2_mount)
    sent: list[str] = []
    fast_get = store.session.fast_get

    def recording(path: str, params: Any = None) -> Any:
        sent.append(path)
        return fast_get(path, params)

    monkeypatch.setattr(store.session, "fast_get", recording)
    paths = [f"bulk/account-{index}" for index in range(30)] + ["bulk/../sys/seal"]

    with pytest.raises(VaultError, match=r"bulk/\.\./sys/seal"):
        store.read_metadata_many(paths)
    assert sent == []


def test_kv1_presence_by_listing(openbao: OpenBaoServer, kv1_mount: str) -> None:
    openbao.kv_put("nylas/support", {"imap_username": "u"}, mount=kv1_mount)
    openbao.kv_put("top", {"refresh_token": "x"}, mount=kv1_mount)
    store = store_for(openbao, kv1_mount, kv_version=1)

    versions = store.read_metadata_many(["nylas/support", "nylas/absent", "top", "other/x"])

    assert versions["nylas/support"].state is SecretState.PRESENT
    assert versions["nylas/support"].version is None
    assert versions["nylas/absent"].state is SecretState.MISSING
    assert versions["top"].state is SecretState.PRESENT
    assert versions["other/x"].state is SecretState.MISSING


def test_kv1_list_only_policy(openbao: OpenBaoServer, kv1_mount: str) -> None:
    openbao.kv_put("nylas/support", {"imap_password": "kv1-canary-password"}, mount=kv1_mount)
    policy = openbao.unique("kv1-plan")
    openbao.write_policy(policy, f'path "{kv1_mount}/nylas/" {{ capabilities = ["list"] }}')
    store = store_for(openbao, kv1_mount, kv_version=1, token=openbao.create_token([policy]))

    version = store.read_metadata("nylas/support")
    with pytest.raises(VaultPermissionError) as caught:
        store.read_secret("nylas/support", None)

    assert version.state is SecretState.PRESENT
    assert caught.value.path == f"{kv1_mount}/nylas/support"
    assert "kv1-canary-password" not in str(caught.value)


def test_kv1_read_ignores_version(openbao: OpenBaoServer, kv1_mount: str) -> None:
    openbao.kv_put("nylas/support", {"imap_password": "pw-value"}, mount=kv1_mount)

    data = store_for(openbao, kv1_mount, kv_version=1).read_secret("nylas/support", 7)

    assert data["imap_password"].reveal() == "pw-value"


def test_kv1_denied_listing(openbao: OpenBaoServer, kv1_mount: str) -> None:
    policy = openbao.unique("kv1-none")
    openbao.write_policy(policy, f'path "{kv1_mount}/other/" {{ capabilities = ["list"] }}')
    store = store_for(openbao, kv1_mount, kv_version=1, token=openbao.create_token([policy]))

    version = store.read_metadata("nylas/support")

    assert version.state is SecretState.DENIED
    assert '"list"' in version.detail
    assert f"{kv1_mount}/nylas/" in version.detail


@pytest.mark.parametrize("path", ["", "/", "a//b", "../sys/seal", "a/./b", "a?b", "a#b"])
def test_check_path_rejects(path: str) -> None:
    with pytest.raises(VaultError):
        check_path(path)


def _segment_rules_accept(path: str) -> bool:
    """Return whether `path` passes the rules that `check_path` documents, applied one by one."""
    stripped = path.strip("/")
    segments = stripped.split("/")
    if not stripped or any(segment in {"", ".", ".."} for segment in segments):
        return False
    return not any(character in stripped for character in "?#%\\") and stripped.isprintable()


@given(st.text(alphabet="a./-?%#\\ \x00é", max_size=10))
@example("..")
@example("a/../b")
@example("/./")
@example("a/.b/..c")
def test_check_path_fast_match_agrees(path: str) -> None:
    """The one-match path for plain names accepts exactly what the full checks accept."""
    try:
        accepted = check_path(path) == path.strip("/")
    except VaultError:
        accepted = False
    assert accepted == _segment_rules_accept(path)
