"""``ritornello deployments|services|state|schedules ...``, the token and the error paths,
against a real ``ritornello dev`` (which runs with an admin token)."""

from __future__ import annotations

from openapi_spec_validator import validate

from tests.cli.conftest import Dev
from tests.procs import free_port, wait_until


def test_deployments_list_show_register_delete(dev: Dev) -> None:
    (dep,) = dev.json("deployments", "list")["deployments"]
    assert dep["uri"] == "inproc://app"
    shown = dev.json("deployments", "show", dep["id"])
    assert "Greeter" in [s["name"] for s in shown["services"]]
    assert "inproc://app" in dev.ok("deployments", "list").stdout
    assert "Counter" in dev.ok("deployments", "show", dep["id"]).stdout

    assert "404" in dev.fails("deployments", "show", "dp_nope")
    assert "404" in dev.fails("deployments", "delete", "dp_nope")
    dead = f"http://127.0.0.1:{free_port()}"  # discovery finds nothing there
    line = dev.fails("deployments", "register", dead)
    assert line.startswith("error: ") and "from POST /deployments" in line
    assert "exactly one" in dev.fails("deployments", "register")


def test_deployments_register_an_aws_durable_function(dev: Dev) -> None:
    """``--protocol aws-durable --service NAME`` registers a durable function by its
    qualified ARN (service NAME, one handler, run); what the admin API refuses is the CLI's
    one error line with the API's reason, in the flags' names; the output fits 80 columns."""
    arn = "arn:aws:lambda:us-east-1:123456789012:function:orders:1"
    flags = ("--arn", arn, "--protocol", "aws-durable")
    for args, why in [
        (flags, "aws-durable takes --arn and --service"),  # no --service
        (("--arn", arn, "--service", "Orders"), '--protocol must be "aws-durable"'),
        (("--arn", arn, "--protocol", "grpc", "--service", "Orders"), "--protocol must be"),
        (("https://x.example", "--protocol", "aws-durable", "--service", "O"), "not URI"),
        (("--arn", arn.rsplit(":", 1)[0], *flags[2:], "--service", "O"), "unqualified"),
        ((*flags, "--service", "a/b"), "service 'a/b'"),
        ((*flags, "--service", "O", "--limit", "l"), "takes no --assume-role-arn nor --limit"),
        ((*flags, "--service", "O", "--execution-timeout", "0"), "--execution-timeout must be"),
        ((*flags, "--service", "O", "--execution-timeout", "31622401"), "from 1 to 31622400"),
        (("--arn", arn, "--execution-timeout", "5"), "--execution-timeout goes with --protocol"),
    ]:
        line = dev.fails("deployments", "register", *args)
        assert "from POST /deployments" in line and why in line, (args, line)
    timeout = ("--execution-timeout", "3600")
    shown = dev.run("deployments", "register", *flags, "--service", "Orders", *timeout, columns=80)
    assert shown.exit_code == 0, (shown.stdout, shown.stderr)
    assert "execution timeout" in shown.stdout and "3600 s" in shown.stdout, shown.stdout
    assert "registered deployment" in shown.stderr + shown.stdout and "Orders" in shown.stdout
    assert all(len(row) <= 80 for row in shown.stdout.splitlines()), shown.stdout
    deps = dev.json("deployments", "list")["deployments"]
    (dep,) = [d for d in deps if d["uri"] == arn]
    assert dep["services"][0]["name"] == "Orders" and dep["execution_timeout_s"] == 3600
    assert [h["name"] for h in dev.json("services", "show", "Orders")["handlers"]] == ["run"]
    # another function as the same service is refused (Orders is served already)
    other = ("--arn", arn.replace("orders", "other"), *flags[2:], "--service", "Orders")
    assert "already served" in dev.fails("deployments", "register", *other)
    dev.ok("deployments", "delete", dep["id"])
    help_text = dev.run("deployments", "register", "--help", columns=80).stdout
    assert "--protocol" in help_text and "--service" in help_text
    assert "--execution-timeout" in help_text
    assert all(len(row) <= 80 for row in help_text.splitlines()), help_text


def test_services_list_and_show(dev: Dev) -> None:
    services = {s["name"]: s for s in dev.json("services", "list")["services"]}
    assert services["Counter"]["ty"] == "VirtualObject"
    counter = dev.json("services", "show", "Counter")
    assert {h["name"] for h in counter["handlers"]} == {"add", "get", "reset"}
    assert "add" in dev.ok("services", "show", "Counter").stdout
    assert "Greeter" in dev.ok("services", "list").stdout
    assert "service Nope not found" in dev.fails("services", "show", "Nope")
    add = next(h for h in counter["handlers"] if h["name"] == "add")
    assert add["input_json_schema"] == {"type": "integer"}
    assert "integer" in dev.ok("services", "show", "Counter").stdout  # the input column


def test_services_openapi(dev: Dev) -> None:
    doc = dev.json("services", "openapi", "Counter")
    validate(doc)
    add = doc["paths"]["/restate/call/Counter/{key}/add"]["post"]
    assert add["requestBody"]["content"]["application/json"]["schema"] == {"type": "integer"}
    shown = dev.ok("services", "openapi", "Counter").stdout
    assert "POST /restate/send/Counter/{key}/add" in shown and "202" in shown
    assert "service Nope not found" in dev.fails("services", "openapi", "Nope")


def test_state_get_and_set_with_a_version(dev: Dev) -> None:
    dev.ok("call", "Counter/add", "7", "--key", "st")
    got = dev.json("state", "get", "Counter", "st")
    assert got["state"] == {"count": 7}
    assert "count" in dev.ok("state", "get", "Counter", "st").stdout

    written = dev.json(
        "state", "set", "Counter", "st", '{"count": 40}', "--version", got["version"]
    )
    assert written["version"] != got["version"]
    assert dev.json("call", "Counter/add", "2", "--key", "st")["output"] == 42  # handlers see it

    stale = dev.fails("state", "set", "Counter", "st", '{"count": 0}', "--version", got["version"])
    assert "409" in stale
    assert dev.json("state", "get", "Counter", "st")["state"] == {"count": 42}
    assert "JSON object" in dev.fails("state", "set", "Counter", "st", "[1]")
    assert "404" in dev.fails("state", "get", "Nope", "st")


def test_schedules_create_list_pause_resume_delete(dev: Dev) -> None:
    made = dev.json(
        "schedules", "create", "--cron", "0 0 1 1 *", "--target", "Greeter/greet",
        "--input", '"cron"',
    )  # fmt: skip
    sid = made["id"]
    assert made["cron"] == "0 0 1 1 *" and made["input"] == "cron" and made["paused"] is False
    assert sid in [s["id"] for s in dev.json("schedules", "list")["schedules"]]
    assert dev.json("schedules", "show", sid)["target"] == "Greeter/greet"
    assert "Greeter/greet" in dev.ok("schedules", "list").stdout
    dev.ok("schedules", "pause", sid)
    assert dev.json("schedules", "show", sid)["paused"] is True
    dev.ok("schedules", "resume", sid)
    assert dev.json("schedules", "show", sid)["paused"] is False
    assert "deleted" in dev.ok("schedules", "delete", sid).stderr
    assert "404" in dev.fails("schedules", "show", sid)
    assert "400" in dev.fails("schedules", "create", "--cron", "nope", "--target", "Greeter/greet")
    keyless = dev.fails("schedules", "create", "--cron", "0 0 1 1 *", "--target", "Counter/add")
    assert keyless.endswith("give a key with --key"), keyless  # the flag, not the API field


def test_a_refused_delete_names_the_flag_that_forces_it(dev: Dev) -> None:
    (dep,) = dev.json("deployments", "list")["deployments"]
    inv_id = dev.ok("call", "Approvals/request", "{}", "--key", "pin", "--send").stdout.strip()
    status = lambda: dev.json("invocations", "show", inv_id)["status"]  # noqa: E731
    wait_until(lambda: status() == "suspended", 20, "the request waits")
    line = dev.fails("deployments", "delete", dep["id"])
    assert "409" in line and "add --force" in line and "?force" not in line, line
    dev.ok("invocations", "kill", inv_id)  # the deployment stays for the other tests


def test_the_token_is_sent_and_a_missing_one_is_explained(dev: Dev) -> None:
    line = dev.fails("services", "list", token=None)
    assert "401" in line and "RITORNELLO_ADMIN_TOKEN" in line
    assert "401" in dev.fails("invocations", "list", token="wrong")
    result = dev.run("services", "list", "--json", "--token", "cli-test-token", token=None)
    assert result.exit_code == 0 and '"Greeter"' in result.stdout

    line = dev.fails("call", "Greeter/greet", '"x"', ingress_token=None)  # the ingress has one too
    assert "401" in line and "RITORNELLO_INGRESS_TOKEN" in line
    token = ("--token", "cli-ingress-token")
    result = dev.run("call", "Greeter/greet", '"t"', *token, ingress_token=None)
    assert result.exit_code == 0 and "Hello, t!" in result.stdout


def test_an_unreachable_url_is_one_line_naming_it(dev: Dev) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("services", "list"), ("invocations", "show", "inv_x"), ("schedules", "list")):
        line = dev.fails(*args, "--admin-url", url)
        assert f"cannot reach the admin API at {url}" in line
    line = dev.fails("call", "Greeter/greet", '"x"', "--ingress-url", url)
    assert f"cannot reach the ingress at {url}" in line


def test_values_the_server_refuses_are_refused_before_any_request(dev: Dev) -> None:
    """The CLI checks JSON arguments with the engine's own check (``json_input_of``): what
    Python's parser reads but the server refuses (NaN, 1e999, integers past 64 bits, nesting
    past 128 levels) is an error here, and nothing is stored."""
    schedules = dev.json("schedules", "list")["schedules"]
    assert "NaN and infinities" in dev.fails("call", "Greeter/greet", "NaN")
    assert "NaN and infinities" in dev.fails("call", "Greeter/greet", '["a", 1e999]')
    assert "64 bits" in dev.fails("call", "Counter/add", str(2**64), "--key", "big")
    line = dev.fails("state", "set", "Counter", "inf", '{"count": 1e999}')
    assert "state value 'count'" in line and "NaN and infinities" in line
    assert "deeper than 128" in dev.fails(
        "state", "set", "Counter", "inf", '{"count": ' + "[" * 300 + "]" * 300 + "}"
    )
    assert dev.json("state", "get", "Counter", "inf")["state"] == {}
    deep = "[" * 300 + "]" * 300
    line = dev.fails(
        "schedules", "create", "--cron", "0 0 1 1 *", "--target", "Greeter/greet", "--input", deep
    )
    assert "deeper than 128" in line
    assert dev.json("schedules", "list")["schedules"] == schedules


def test_services_set_changes_settings_and_show_prints_them(dev: Dev) -> None:
    shown = dev.ok("services", "show", "Greeter").stdout
    assert "journal retention" in shown and "public" in shown
    changed = dev.json(
        "services", "set", "Greeter", "--journal-retention", "30d", "--abort-timeout", "1m"
    )
    assert (changed["journal_retention"], changed["abort_timeout"]) == ("30days", "1m")
    assert changed["overrides"] == ["abort_timeout", "journal_retention"]
    out = dev.ok("services", "set", "Greeter", "--public", "false").stdout
    assert "false (set by an operator)" in out and "30days (set by an operator)" in out
    refused = dev.run("call", "Greeter/greet", '"x"')
    assert refused.exit_code == 1 and "private" in refused.stderr
    assert "30days" in dev.ok("services", "show", "Greeter").stdout
    assert "invalid journal_retention 'soon'" in dev.fails(
        "services", "set", "Greeter", "--journal-retention", "soon"
    )
    assert "service Nope not found" in dev.fails("services", "set", "Nope", "--public", "true")
    assert dev.run("services", "set", "Greeter").exit_code == 2  # nothing to change
    assert dev.run("services", "set", "Greeter", "--public", "maybe").exit_code == 2
    dev.ok("services", "set", "Greeter", "--public", "true")  # as it was, for other tests
