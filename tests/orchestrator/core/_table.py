"""Tables of the core: scenarios written as data, run against ``Core.apply`` without an event
loop, and what comes out rendered compactly so that a table reads like a transcript.

A table (``tables/*.json``) is::

    {"why": "what it pins",
     "services": {"Svc": ["service", {"h": "exclusive"}], "Obj": ["object", {...}]},
     "partitions": 1, "ready": [0], "exclusive": true, "v2": true (a deployment dp_2 too),
     "transcript": [{"at": 0, "event": {"type": "Submit", ...}, "expect": [...lines]}, ...]}

Events name invocations by short aliases (``a``, ``b``); ``{"derive": ["a", 1]}`` is the id a
call at entry 1 of ``a`` gives its callee (alias ``a.1``), ``{"awakeable": ["a", 2]}`` an
awakeable id of entry 2 of ``a`` (alias ``~a.2``). Records are written as the fields that
matter (``{"id": "a", "target": "Obj/add", "key": "k", "status": "suspended",
"waiting": [1]}``); the rest take defaults. Times are milliseconds after ``T0``.

Each event's output is a list of lines: the unit (``unit@p0``, then one line per write),
``effect ...`` lines, ``next ...``, or ``raises Kind: message``. ``expect`` holds what the
event must give; ``RITORNELLO_TABLES=update`` writes what it gives instead (then read the
diff: a table is only as good as its review).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ritornello.orchestrator import LimitSpec
from ritornello.orchestrator import core as c
from ritornello.orchestrator.errors import OrchestratorError
from ritornello.protocol import (
    DiscoveryResponse,
    HandlerInfo,
    InvokeResponse,
    RetryPolicy,
    ServiceInfo,
    derive_id,
)
from ritornello.protocol._ids import _b32
from ritornello.store import (
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    PermitRecord,
    TimerRecord,
)

T0 = 1_700_000_000_000
DEPLOYMENT = "dp_1"
_AT = re.compile(r',"at":\d+\}$')


@dataclass
class Table:
    """One scenario: a core and the names it knows."""

    core: c.Core
    names: dict[str, str] = field(default_factory=dict)  # alias -> id
    aliases: dict[str, str] = field(default_factory=dict)  # id -> alias
    seq: int = 0

    # --- names

    def id(self, alias: Any) -> str:
        if isinstance(alias, dict):
            if "derive" in alias:
                parent, index = alias["derive"]
                real = derive_id(self.id(parent), index)
                self.name(f"{parent}.{index}", real)
                return real
            if "awakeable" in alias:
                parent, index, *forged = alias["awakeable"]
                secret = _b32((b"secret" + b"".join(x.encode() for x in forged)).ljust(17, b"."))
                real = f"sign_{self.id(parent)[4:]}_{index}_{secret}"
                self.name(f"~{parent}.{index}{''.join('!' + x for x in forged)}", real)
                return real
            raise ValueError(f"unknown id form {alias!r}")
        if alias not in self.names:
            self.name(alias, "inv_" + alias.replace(".", "x").ljust(26, "0"))
        return self.names[alias]

    def name(self, alias: str, real: str) -> None:
        self.names[alias] = real
        self.aliases[real] = alias

    def alias(self, real: str | None) -> str:
        if real is None:
            return "-"
        if real not in self.aliases and real.startswith("inv_"):
            return real  # unnamed: shown as is
        return self.aliases.get(real, real)

    def text(self, raw: str) -> str:
        """A stored text with its commit time dropped and ids replaced by aliases."""
        out = _AT.sub("}", raw)
        for real, alias in sorted(self.aliases.items(), key=lambda x: -len(x[0])):
            out = out.replace(real, alias)
        return out

    # --- records and journals

    def record(self, spec: dict[str, Any]) -> InvocationRecord:
        service, handler = spec["target"].split("/")
        svc = self.core.registry.service(service)
        kind = "exclusive"
        if svc is not None:
            found = svc[0].handler(handler)
            kind = found.kind if found is not None else kind
        inv_id = self.id(spec["id"])
        key = spec.get("key")
        caller = spec.get("caller")
        self.seq += 1
        fields: dict[str, Any] = {
            "id": inv_id,
            "service": service,
            "handler": handler,
            "key": key,
            "handler_kind": kind,
            "status": spec.get("status", "running"),
            "deployment_id": DEPLOYMENT,
            "seq": spec.get("seq", self.seq),
            "created_at": T0,
            "modified_at": T0,
            "attempt": spec.get("attempt", 1),
            "journal_len": spec.get("journal_len", len(spec.get("journal", [])) or 1),
            "waiting": tuple(spec.get("waiting", ())),
            "caller_id": self.id(caller[0]) if caller else None,
            "caller_index": caller[1] if caller else None,
            "idempotency_key": spec.get("idempotency_key"),
            "result": spec.get("result"),
            "next_at": T0 + spec["next_at"] if "next_at" in spec else None,
            "version": spec.get("version", 1),
            "partition": self.core.partition_of(service, key, inv_id),
        }
        return InvocationRecord(**fields)

    def journal(self, spec: dict[str, Any]) -> tuple[list[str], list[str]]:
        entries = [self.entry(e) for e in spec.get("journal", [{"kind": "input", "value": None}])]
        completions = [self.entry(x) for x in spec.get("completions", [])]
        return entries, completions

    def entry(self, obj: dict[str, Any]) -> str:
        return json.dumps(self.resolve(obj), separators=(",", ":"))

    def resolve(self, value: Any) -> Any:
        """``value`` with every ``{"derive": ...}`` / ``{"awakeable": ...}`` / ``{"id": ...}``
        form turned into a real id."""
        if isinstance(value, dict):
            if set(value) in ({"derive"}, {"awakeable"}):
                return self.id(value)
            if set(value) == {"ref"}:
                return self.id(value["ref"])
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def permit(self, spec: list[Any]) -> PermitRecord:
        """``[limit, alias, index, priority, asked_at, granted_at | null]`` (times after T0)."""
        limit, alias, index, priority, asked, granted = spec
        p = c.limit_partition(limit, self.core.partitions)
        at = None if granted is None else T0 + granted
        return PermitRecord(limit, self.id(alias), index, p, priority, T0 + asked, at)

    def timer(self, spec: list[Any]) -> TimerRecord:
        kind, alias, index, fire_at = spec
        inv = self.id(alias)
        svc_key = self.names.get("@partition:" + alias)
        partition = int(svc_key) if svc_key else 0
        return TimerRecord(T0 + fire_at, inv, kind, index, partition)


def build_core(spec: dict[str, Any]) -> Table:
    registry = c.Registry()
    services = []
    for name, (kind, handlers) in spec.get("services", {}).items():
        infos = []
        for h, hk in handlers.items():
            retry = None
            if isinstance(hk, list):
                hk, retry = hk[0], RetryPolicy(**hk[1])
            infos.append(HandlerInfo(h, hk, retry))
        services.append(ServiceInfo(name, kind, tuple(infos)))
    discovery = DiscoveryResponse(tuple(services))
    registry.add(
        DeploymentRecord(DEPLOYMENT, "inproc://app", discovery.encode().decode(), T0), discovery
    )
    if spec.get("v2"):  # a second deployment of the same services, registered later
        registry.add(
            DeploymentRecord("dp_2", "inproc://v2", discovery.encode().decode(), T0 + 1), discovery
        )
    retry = RetryPolicy(**spec["retry"]) if "retry" in spec else None
    core = c.Core(registry, retry=retry, retention_ms=spec.get("retention_ms", 86_400_000))
    core.apply(c.Booted(0, spec.get("partitions", 1), spec.get("exclusive", True)), T0)
    table = Table(core)
    for p in spec.get("ready", [0]):
        core.apply(c.PartitionClaimed(p), T0)
        core.apply(c.PartitionRecovered(p, [], [], {}), T0)
    for p in spec.get("claimed", []):
        core.apply(c.PartitionClaimed(p), T0)
    return table


def event(t: Table, spec: dict[str, Any]) -> c.Event:
    """An event from its JSON form (see the module docstring)."""
    kind = spec["type"]
    ident = (lambda k="id": t.id(spec[k])) if "id" in spec or "record" in spec else None
    if kind == "Submit":
        service, handler = spec["target"].split("/")
        target = t.core.registry.resolve(service, handler)
        assert target is not None, spec["target"]
        return c.Submit(
            t.id(spec["id"]),
            target,
            spec.get("key"),
            json.dumps(spec.get("input")),
            spec.get("headers"),
            spec.get("idempotency_key"),
            spec.get("delay_ms", 0),
            spec.get("here", True),
        )
    if kind in ("DriverStarted", "RedriveDue", "Stopping", "Released"):
        return getattr(c, kind)(t.id(spec["id"]))
    if kind == "DriverEnded":
        return c.DriverEnded(t.id(spec["id"]), spec.get("cause", "done"))
    if kind == "Loaded":
        if spec.get("record") is None:
            return c.Loaded(t.id(spec["id"]), None)
        rec = t.record(spec["record"])
        entries, completions = t.journal(spec["record"])
        return c.Loaded(rec.id, rec, entries, completions)
    if kind == "StateRead":
        return c.StateRead(t.id(spec["id"]), {k: json.dumps(v) for k, v in spec["rows"].items()})
    if kind == "CompletionsRead":
        return c.CompletionsRead(t.id(spec["id"]), [t.entry(x) for x in spec["completions"]])
    if kind == "Answered":
        answer = InvokeResponse.decode({"version": 1, **t.resolve(spec["answer"])})
        return c.Answered(t.id(spec["id"]), answer)
    if kind == "AttemptFailed":
        return c.AttemptFailed(t.id(spec["id"]), spec["message"])
    if kind == "LookedUp":
        awakeables = {}
        for aid_spec, rec_spec in spec.get("awakeables", []):
            rec = t.record(rec_spec) if rec_spec else None
            entries, completions = t.journal(rec_spec) if rec_spec else ([], [])
            awakeables[t.id(aid_spec)] = (rec, entries, completions)
        rows = spec.get("rows")
        started = frozenset((s, k) for s, k in spec.get("started", []))
        existing = tuple(
            ((svc, handler, key, idem), t.record(rec))
            for (svc, handler, key, idem), rec in spec.get("existing", [])
        )
        return c.LookedUp(
            t.id(spec["id"]),
            awakeables,
            started,
            None if rows is None else _rows(t, rows),
            existing,
        )
    if kind == "Committed":
        return c.Committed(spec["token"])
    if kind == "CommitFailed":
        return c.CommitFailed(spec["token"], spec["reason"])
    if kind in ("TimersDue", "TimersBack"):
        return getattr(c, kind)([t.timer(x) for x in spec["timers"]])
    if kind == "AttachChecked":
        result = spec.get("result")
        return c.AttachChecked(
            t.timer(spec["timer"]),
            spec["waiting"],
            T0 + spec["since"],
            None if result is None else json.dumps(result, separators=(",", ":")),
        )
    if kind == "SleepsDue":
        return c.SleepsDue(spec["partition"], [t.timer(x) for x in spec["timers"]])
    if kind in ("ScheduledDue", "ScheduledRecheck"):
        rec = t.record(spec["record"]) if spec.get("record") else None
        return getattr(c, kind)(t.timer(spec["timer"]), rec)
    if kind in ("PartitionClaimed", "PartitionDraining", "PartitionLost"):
        return getattr(c, kind)(spec["partition"])
    if kind == "PartitionRecovered":
        records = [t.record(r) for r in spec["records"]]
        journals = {
            rec.id: t.journal(r)
            for rec, r in zip(records, spec["records"], strict=True)
            if rec.status in ("running", "pending")
        }
        return c.PartitionRecovered(
            spec["partition"], records, [t.timer(x) for x in spec.get("timers", [])], journals
        )
    if kind == "CompletionsFound":
        return c.CompletionsFound(
            {t.id(a): ([], [t.entry(x) for x in comps]) for a, comps in spec["journals"].items()}
        )
    if kind == "Reconcile":
        return c.Reconcile(
            t.record(spec["record"]), [t.entry(x) for x in spec.get("completions", [])]
        )
    if kind == "Operate":
        rec = t.record(spec["record"]) if spec.get("record") else None
        entries, completions = t.journal(spec["record"]) if spec.get("record") else ([], [])
        return c.Operate(
            spec["action"],
            t.id(spec["id"]),
            rec,
            entries,
            completions,
            spec.get("here", True),
            spec.get("deployment"),
            spec.get("result"),
        )
    if kind == "RestartAsNew":
        rec = t.record(spec["record"]) if spec.get("record") else None
        entries, completions = t.journal(spec["record"]) if spec.get("record") else ([], [])
        return c.RestartAsNew(
            t.id(spec["id"]),
            rec,
            entries,
            completions,
            spec.get("from", 0),
            spec.get("deployment", "keep"),
            t.id(spec["new"]),
            spec.get("here", True),
        )
    if kind == "CancelSignal":
        return c.CancelSignal(t.record(spec["record"]))
    if kind == "CompleteAwakeable":
        rec = t.record(spec["record"]) if spec.get("record") else None
        entries, completions = t.journal(spec["record"]) if spec.get("record") else ([], [])
        return c.CompleteAwakeable(
            t.id(spec["awakeable"]), rec, entries, completions, json.dumps(spec["result"])
        )
    if kind == "Purge":
        return c.Purge([t.record(r) for r in spec["records"]], spec.get("here", True))
    if kind in ("HoldKey", "ReleaseKey"):
        return getattr(c, kind)(spec["service"], spec["key"])
    if kind == "WriteState":
        return c.WriteState(
            spec["service"],
            spec["key"],
            _rows(t, spec["rows"]),
            {k: json.dumps(v) for k, v in spec["texts"].items()},
        )
    if kind == "LimitsDefined":
        specs = {n: LimitSpec(**body) for n, body in spec["limits"].items()}
        return c.LimitsDefined(specs, spec.get("fresh", False))
    if kind == "PermitsRead":
        rows = [t.permit(r) for r in spec["rows"]]
        return c.PermitsRead(
            rows, spec.get("partition"), spec.get("limit"), read_from=spec.get("read_from")
        )
    if kind == "PermitChanged":
        row = t.permit(spec["row"]) if spec.get("row") else None
        return c.PermitChanged(
            spec["limit"], t.id(spec["id"]), spec["index"], row, spec.get("read_from")
        )
    if kind == "PermitNoticed":
        return c.PermitNoticed(spec["limit"], t.id(spec["id"]), spec["index"])
    if kind == "LimitsDue":
        return c.LimitsDue()
    if kind == "Closing":
        return c.Closing()
    if kind == "Booted":
        return c.Booted(
            spec.get("max_seq", 0), spec.get("partitions", 1), spec.get("exclusive", True)
        )
    del ident
    raise ValueError(f"unknown event type {kind!r}")


def _rows(t: Table, rows: dict[str, Any]) -> dict[str, str]:
    """State rows: user values as JSON; ``\\u0000p:``/``\\u0000w:`` rows name promises and
    waiters (a waiter row's invocation is an alias)."""
    out = {}
    for name, value in rows.items():
        if name.startswith("\x00w:"):
            promise, alias, index = name[3:].rsplit(":", 2)
            out[f"\x00w:{promise}:{t.id(alias)}:{index}"] = "1"
        elif name.startswith("\x00p:"):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = json.dumps(value, separators=(",", ":"))
    return out


# --- rendering ------------------------------------------------------------------------------


def render(t: Table, decision: c.Decision) -> list[str]:
    lines: list[str] = []
    if decision.unit is not None:
        home = "-" if decision.home is None else f"p{decision.home}"
        lines.append(f"unit@{home} token={decision.token}")
        lines.extend("  " + line for line in _unit(t, decision.unit))
    lines.extend(f"effect {_effect(t, e)}" for e in decision.effects)
    if decision.next is not None:
        lines.append(f"next {_action(t, decision.next)}")
    return lines


def _when(ms: int | None) -> str:
    return "-" if ms is None else f"+{ms - T0}"


def _unit(t: Table, unit: CommitUnit) -> Iterator[str]:
    for inv in unit.purge:
        yield f"purge {t.alias(inv)}"
    for w in unit.invocations:
        r = w.record
        was = "new" if w.expect_version is None else f"v{w.expect_version}"
        extra = []
        if r.waiting:
            extra.append(f"waiting={list(r.waiting)}")
        if r.next_at is not None:
            extra.append(f"next_at={_when(r.next_at)}")
        if r.attempt != 1:
            extra.append(f"attempt={r.attempt}")
        if r.result is not None:
            extra.append(f"result={t.text(r.result)}")
        if r.caller_id is not None:
            extra.append(f"caller={t.alias(r.caller_id)}#{r.caller_index}")
        if r.key is not None and w.expect_version is None:
            extra.append(f"key={r.key}")
        if r.idempotency_key is not None and w.expect_version is None:
            extra.append(f"idem={r.idempotency_key.replace(chr(0), '<0>')}")
        if w.expect_version is None:
            extra.append(f"{r.service}/{r.handler} p{r.partition}")
        if r.last_error is not None:
            extra.append(f"error={r.last_error[:60]!r}")
        if r.deployment_id and r.deployment_id != DEPLOYMENT:
            extra.append(f"deployment={r.deployment_id}")
        if r.journal_len != 1 and w.expect_version is None:
            extra.append(f"journal_len={r.journal_len}")
        tail = (" " + " ".join(extra)) if extra else ""
        yield f"write {t.alias(r.id)} {was}->v{r.version} {r.status}{tail}"
    for inv, index, text in unit.entries:
        yield f"entry {t.alias(inv)}#{index} {t.text(text)}"
    fresh = set(unit.fresh)
    for inv, index, text in unit.completions:
        must_be_new = " (fresh)" if (inv, index) in fresh else ""
        yield f"completion {t.alias(inv)}#{index} {t.text(text)}{must_be_new}"
    for service, key, name, value in unit.state:
        where = f"{service}/{key}"
        if name is None:
            yield f"state {where} clear all"
        else:
            shown = t.text(name.replace("\x00", "\\0"))
            yield f"state {where} {shown}={'-' if value is None else value}"
    for tm in unit.timers_remove:
        yield f"timer- {_timer(t, tm, at=False)}"
    for tm in unit.timers_add:
        yield f"timer+ {_timer(t, tm)}"
    for inv, index in unit.completions_remove:
        yield f"completion- {t.alias(inv)}#{index}"
    for limit, inv, index in unit.permits_release:
        yield f"permit- {limit} {t.alias(inv)}#{index}"
    for r in unit.permits_ask:
        granted = "" if r.granted_at is None else f" granted@{_when(r.granted_at)}"
        who = f"{t.alias(r.invocation_id)}#{r.index}"
        yield f"permit+ {r.limit}@p{r.partition} {who} prio={r.priority}{granted}"
    for r in unit.permits_grant:
        yield f"grant {r.limit} {t.alias(r.invocation_id)}#{r.index} @{_when(r.granted_at)}"
    for p, inv in unit.notify:
        yield f"notify p{p} {t.alias(inv)}"


def _timer(t: Table, tm: TimerRecord, *, at: bool = True) -> str:
    index = f"#{tm.index}" if tm.kind in ("sleep", "attach") else ""
    when = f" @{_when(tm.fire_at)}" if at else ""
    return f"{tm.kind} {t.alias(tm.invocation_id)}{index}{when}"


def _effect(t: Table, e: c.Effect) -> str:
    if isinstance(e, c.Drive | c.Halt):
        return f"{type(e).__name__} {t.alias(e.invocation_id)}"
    if isinstance(e, c.Reply):
        return f"Reply {t.alias(e.invocation_id)} {t.text(e.result)}"
    if isinstance(e, c.Arm | c.Disarm):
        return f"{type(e).__name__} {_timer(t, e.timer, at=isinstance(e, c.Arm))}"
    if isinstance(e, c.Rearm):
        return f"Rearm [{', '.join(_timer(t, x) for x in e.timers)}] in {e.delay_s:g}s"
    if isinstance(e, c.Redrive):
        return f"Redrive {t.alias(e.invocation_id)} in {e.delay_s:g}s"
    if isinstance(e, c.Woke):
        return f"Woke {t.alias(e.invocation_id)} due {_when(e.fire_at)}"
    if isinstance(e, c.FireSleeps):
        return f"FireSleeps p{e.partition} [{', '.join(_timer(t, x) for x in e.timers)}]"
    if isinstance(e, c.StartDue | c.StartRecheck | c.CheckAttach):
        return f"{type(e).__name__} {_timer(t, e.timer)}"
    if isinstance(e, c.CheckSuspended):
        return f"CheckSuspended {[t.alias(i) for i in e.invocation_ids]}"
    if isinstance(e, c.DropTimers):
        return f"DropTimers p{e.partition}"
    if isinstance(e, c.LimitTurn):
        return f"LimitTurn in {e.delay_ms}ms"
    if isinstance(e, c.ReadPermits):
        return f"ReadPermits {e.limit}"
    if isinstance(e, c.ReadLimits):
        return "ReadLimits"
    raise AssertionError(f"unrendered effect {e!r}")


def _action(t: Table, a: c.Action) -> str:
    if isinstance(a, c.Invoke):
        inv = a.invocation
        parts = [f"Invoke {t.alias(inv.rec.id)} attempt={inv.rec.attempt}"]
        parts.append(f"journal={len(inv.entries)}")
        if inv.completions:
            parts.append(f"completions={sorted(inv.completions)}")
        if inv.state is not None:
            parts.append(f"state={dict(sorted(inv.state.items()))}")
        if inv.promises:
            parts.append(f"promises={sorted(inv.promises)}")
        parts.append(f"stream={a.stream}")
        return " ".join(parts)
    if isinstance(a, c.ReadState):
        return f"ReadState {a.service}/{a.key}"
    if isinstance(a, c.Lookup):
        rows = "-" if a.rows is None else "/".join(a.rows)
        aw = [t.alias(x) for x in a.awakeables]
        keyed = f" keyed={[list(k) for k in a.keyed]}" if a.keyed else ""
        workflows = [list(w) for w in a.workflows]
        return f"Lookup awakeables={aw} workflows={workflows} rows={rows}{keyed}"
    return type(a).__name__


def run(spec: dict[str, Any]) -> list[list[str]]:
    """Every event's lines (a refused event: ``raises Kind: message``)."""
    t = build_core(spec)
    for alias, p in spec.get("timer_partitions", {}).items():
        t.names["@partition:" + alias] = str(p)
    out = []
    for s in spec["transcript"]:
        ev = event(t, s["event"])
        try:
            decision = t.core.apply(ev, T0 + s.get("at", 0))
        except OrchestratorError as exc:
            out.append([f"raises {type(exc).__name__}: {t.text(str(exc))}"])
            continue
        out.append(render(t, decision))
    return out
