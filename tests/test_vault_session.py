"""VaultSession failure handling: sealed, unreachable, 5xx retries, namespaces, TLS, API key."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from reconciler.errors import (
    ConfigError,
    VaultError,
    VaultSealedError,
    VaultUnavailableError,
)
from reconciler.model import SecretState, VaultSettings
from reconciler.secrets import Secret
from reconciler.vault import (
    AuthConfig,
    AuthMethod,
    VaultSecretStore,
    connect_vault,
    read_api_key_from_vault,
)
from reconciler.vault.fastread import FastReader
from tests.support.jsonserver import JSONHandler, serving
from tests.support.openbao import OpenBaoServer, free_port


def root_config(server: OpenBaoServer, **options: object) -> AuthConfig:
    return AuthConfig(addr=server.addr, token=Secret(server.root_token), **options)  # type: ignore[arg-type]


def test_sealed_server(openbao_factory: Callable[..., OpenBaoServer]) -> None:
    server = openbao_factory()
    server.kv_put("nylas/leyah", {"refresh_token": "x"})
    session = connect_vault(root_config(server), backoff_s=0.01)
    store = VaultSecretStore(session, VaultSettings())
    server.seal()

    with pytest.raises(VaultSealedError) as caught:
        store.read_metadata("nylas/leyah")
    with pytest.raises(VaultSealedError):
        connect_vault(root_config(server))

    assert "sealed" in caught.value.message
    assert "unseal" in caught.value.hint


def test_https_address_of_plain_http_server() -> None:
    with serving(JSONHandler) as url:
        config = AuthConfig(addr=url.replace("http://", "https://"), token=Secret("t-plain"))
        with pytest.raises(VaultUnavailableError) as caught:
            connect_vault(config, sleep=lambda _: None)

    assert "does not respond with TLS" in caught.value.message
    assert "http:// VAULT_ADDR" in caught.value.hint


class NotVault(JSONHandler):
    """Another API: 401 with its own error body for every request."""

    def do_GET(self) -> None:  # noqa: N802  # the name http.server dispatches to
        self.reply(401, {"request_id": "r-1", "error": {"type": "unauthorized"}})


def test_address_of_another_api() -> None:
    with serving(NotVault) as url, pytest.raises(VaultUnavailableError) as caught:
        connect_vault(AuthConfig(addr=url, token=Secret("t-other")), sleep=lambda _: None)

    assert "without Vault's error format" in caught.value.message
    assert "request_id" not in caught.value.message
    assert "VAULT_ADDR" in caught.value.hint


def test_unreachable_address() -> None:
    delays: list[float] = []
    config = AuthConfig(addr=f"http://127.0.0.1:{free_port()}", token=Secret("any-token"))

    with pytest.raises(VaultUnavailableError) as caught:
        connect_vault(config, sleep=delays.append)

    assert "could not be reached" in caught.value.message
    assert "VAULT_ADDR" in caught.value.hint
    # The token check is a read and is retried as reads are: three waits between attempts.
    assert len(delays) == 3


def test_light_path_uses_timeout_setting() -> None:
    """GRANTCTL_VAULT_TIMEOUT bounds the light path too, not only the full client."""
    config = AuthConfig.from_environment(
        {"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "t", "GRANTCTL_VAULT_TIMEOUT": "2.5"}
    )

    connection = FastReader(config)._connection()

    assert connection.timeout == 2.5


class FlakyVault(JSONHandler):
    """Return 502 for the first `failures` metadata requests, then a KV v2 metadata document."""

    failures = 0
    seen = 0

    def do_GET(self) -> None:  # noqa: N802  # the name http.server dispatches to
        if self.reply_token_lookup():
            return
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            self.reply(502, {"errors": ["upstream connect error"]})
            return
        versions = {"4": {"deletion_time": "", "destroyed": False}}
        self.reply(200, {"data": {"current_version": 4, "versions": versions}})


@pytest.fixture
def flaky_vault() -> Iterator[tuple[str, type[FlakyVault]]]:
    handler = type("Handler", (FlakyVault,), {"failures": 0, "seen": 0})
    with serving(handler) as addr:
        yield addr, handler


def test_retries_5xx_then_succeeds(flaky_vault: tuple[str, type[FlakyVault]]) -> None:
    addr, handler = flaky_vault
    # The light metadata path meets the first failure and hands over to the session,
    # whose own retries meet the other two.
    handler.failures = 3
    delays: list[float] = []
    session = connect_vault(AuthConfig(addr=addr, token=Secret("t-flaky")), sleep=delays.append)

    version = VaultSecretStore(session, VaultSettings()).read_metadata("a")

    assert version.state is SecretState.PRESENT
    assert version.version == 4
    assert len(delays) == 2
    assert delays[1] > 0


def test_5xx_exhausts_retries(flaky_vault: tuple[str, type[FlakyVault]]) -> None:
    addr, handler = flaky_vault
    handler.failures = 100
    delays: list[float] = []
    session = connect_vault(
        AuthConfig(addr=addr, token=Secret("t-flaky")), sleep=delays.append, max_retries=3
    )

    with pytest.raises(VaultUnavailableError) as caught:
        VaultSecretStore(session, VaultSettings()).read_metadata("a")

    # One attempt on the light metadata path, then the session's four (one plus 3 retries).
    assert handler.seen == 5
    assert "upstream connect error" in caught.value.message
    assert caught.value.path == "secret/metadata/a"


def test_namespace_on_login_and_reads(openbao: OpenBaoServer) -> None:
    namespace = openbao.unique("team")
    openbao.bao("namespace", "create", namespace)
    scoped = ("-namespace", namespace)
    openbao.bao("secrets", "enable", *scoped, "-path=kv", "-version=2", "kv")
    openbao.bao("kv", "put", *scoped, "-mount=kv", "nylas/leyah", "refresh_token=ns-token")
    openbao.bao(
        "policy", "write", *scoped, "reader", "-", stdin='path "kv/*" { capabilities = ["read"] }'
    )
    openbao.bao("auth", "enable", *scoped, "approle")
    openbao.bao("write", *scoped, "auth/approle/role/app", "token_policies=reader")
    role_id = openbao.bao("read", *scoped, "-field=role_id", "auth/approle/role/app/role-id").stdout
    secret_id = openbao.bao(
        "write", *scoped, "-f", "-field=secret_id", "auth/approle/role/app/secret-id"
    ).stdout
    config = AuthConfig(
        addr=openbao.addr,
        method=AuthMethod.APPROLE,
        namespace=namespace,
        role_id=Secret(role_id.strip()),
        secret_id=Secret(secret_id.strip()),
    )
    store = VaultSecretStore(connect_vault(config), VaultSettings(mount="kv"))

    version = store.read_metadata("nylas/leyah")
    data = store.read_secret("nylas/leyah", version.version)
    outside = VaultSecretStore(connect_vault(root_config(openbao)), VaultSettings(mount="kv"))

    assert version.state is SecretState.PRESENT
    assert data["refresh_token"].reveal() == "ns-token"
    # Without the namespace header the same route leads nowhere.
    assert outside.read_metadata("nylas/leyah").state is SecretState.MISSING


class OddMetadata(JSONHandler):
    """Return the document in `data` for every metadata read, as no KV v2 mount does."""

    data: object = None

    def do_GET(self) -> None:  # noqa: N802  # the name http.server dispatches to
        if not self.reply_token_lookup():
            self.reply(200, {"data": type(self).data})


@pytest.mark.parametrize(
    "data",
    [
        {"current_version": "x", "versions": "nope"},
        {"current_version": True, "versions": {}},
        {"current_version": 2, "versions": ["2"]},
    ],
    ids=["text version", "boolean version", "versions as a list"],
)
def test_invalid_metadata_names_the_path(data: object) -> None:
    handler = type("Handler", (OddMetadata,), {"data": data})

    with serving(handler) as addr:
        session = connect_vault(AuthConfig(addr=addr, token=Secret("t-odd")))
        with pytest.raises(VaultError) as caught:
            VaultSecretStore(session, VaultSettings()).read_metadata_many(["nylas/leyah"])

    assert "invalid metadata for secret/metadata/nylas/leyah" in caught.value.message
    assert "VAULT_ADDR" in caught.value.hint


def gateway_to(target: str, prefix: str, seen: list[str]) -> type[JSONHandler]:
    """Return a handler that forwards GETs below `prefix` to `target`, as an API gateway does."""
    upstream = urlsplit(target)

    class Gateway(JSONHandler):
        def do_GET(self) -> None:  # noqa: N802  # the name http.server dispatches to
            seen.append(self.path)
            if not self.path.startswith(prefix + "/"):
                self.reply(404, {"errors": ["no route"]})
                return
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=10)
            headers = {name: value for name, value in self.headers.items() if name != "Host"}
            connection.request("GET", self.path.removeprefix(prefix), headers=headers)
            response = connection.getresponse()
            self.reply(response.status, json.loads(response.read() or b"{}"))
            connection.close()

    return Gateway


def test_address_with_a_path_keeps_it(openbao: OpenBaoServer) -> None:
    path = openbao.unique("gateway")
    openbao.kv_put(path, {"refresh_token": "behind-a-gateway"})
    seen: list[str] = []

    with serving(gateway_to(openbao.addr, "/vault", seen)) as url:
        session = connect_vault(AuthConfig(addr=url + "/vault", token=Secret(openbao.root_token)))
        store = VaultSecretStore(session, VaultSettings())
        version = store.read_metadata(path)
        data = store.read_secret(path, version.version)

    assert version.state is SecretState.PRESENT
    assert data["refresh_token"].reveal() == "behind-a-gateway"
    assert seen, "no request reached the gateway"
    assert all(request.startswith("/vault/v1/") for request in seen), seen


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_ca(openbao_factory: Callable[..., OpenBaoServer]) -> None:
    server = openbao_factory(tls=True)
    server.kv_put("tls/one", {"refresh_token": "x"})

    session = connect_vault(root_config(server, cacert=str(server.ca_path)))
    version = VaultSecretStore(session, VaultSettings()).read_metadata("tls/one")

    assert version.state is SecretState.PRESENT
    with pytest.raises(VaultUnavailableError) as caught:
        connect_vault(root_config(server))  # the system CA bundle does not know this CA
    assert "TLS" in caught.value.message
    assert "VAULT_CACERT" in caught.value.hint
    skipped = connect_vault(root_config(server, tls_skip_verify=True))
    assert VaultSecretStore(skipped, VaultSettings()).read_metadata("tls/one").version == 1


def test_api_key_reread_each_call(openbao: OpenBaoServer) -> None:
    path = openbao.unique("nylas-api")
    openbao.kv_put(path, {"api_key": "nyk_v0_first-key"})
    read_key = read_api_key_from_vault(
        connect_vault(root_config(openbao)), f"secret/{path}#api_key"
    )

    first = read_key()
    openbao.kv_put(path, {"api_key": "nyk_v0_rotated-key"})
    second = read_key()

    assert first.reveal() == "nyk_v0_first-key"
    assert second.reveal() == "nyk_v0_rotated-key"


def test_api_key_missing_field(openbao: OpenBaoServer) -> None:
    path = openbao.unique("nylas-api")
    openbao.kv_put(path, {"other": "nyk_v0_not-this-one"})
    read_key = read_api_key_from_vault(
        connect_vault(root_config(openbao)), f"secret/{path}#api_key"
    )

    with pytest.raises(VaultError) as caught:
        read_key()

    assert "'api_key'" in caught.value.message
    assert "nyk_v0_not-this-one" not in str(caught.value)


@pytest.mark.parametrize("reference", ["secret/nylas/api", "secret#key", "/nylas#k", "a/../b#k"])
def test_api_key_reference_invalid(openbao: OpenBaoServer, reference: str) -> None:
    session = connect_vault(root_config(openbao))

    with pytest.raises(ConfigError) as caught:
        read_api_key_from_vault(session, reference)

    assert "GRANTCTL_NYLAS_API_KEY_VAULT_PATH" in caught.value.message
