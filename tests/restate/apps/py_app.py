"""A test endpoint written with the real Restate Python SDK (``restate-sdk`` 1.2.x), for
Ritornello's integration tests: ``app`` is its ASGI application (serve it with ``serve_py.py``).
Each handler is small and deterministic, JSON in and out; together they use every command the
SDK can send. Importing this module has no side effects (the step-count file is opened only when
a ``ctx.run`` closure runs).

The SDK's API, as read from restate-sdk 1.2.0's source (``restate/context.py``,
``server_context.py``, ``asyncio.py``, ``endpoint.py``):

    restate.Service(name) / restate.VirtualObject(name) / restate.Workflow(name)
      @svc.handler(name=None)                        service handler (manifest: no ``ty``)
      @obj.handler(name=None, kind="exclusive"|"shared")
      @wf.main() (kind "workflow"); @wf.handler(kind="shared" default|"exclusive")
      a handler is ``async def h(ctx)`` or ``async def h(ctx, arg)``: ONE argument at most, so
      several values travel as one JSON object; ``-> None`` / no annotation = empty output
    restate.app(services=[...], protocol=None|"bidi"|"request_response", identity_keys=None)
      protocol=None: the manifest's protocolMode follows the discovery request's HTTP version
      (HTTP/1.1 -> REQUEST_RESPONSE, else BIDI_STREAM); min/maxProtocolVersion are 5 and 7
    ctx.run(name, action, serde=, max_attempts=, max_retry_duration=, type_hint=, args=)
      -> RestateDurableFuture[T]  (deprecated in favour of run_typed; sync actions run on a thread)
    ctx.run_typed(name, action, options=RunOptions(...), /, *args, **kwargs)
    ctx.sleep(delta: timedelta, name=None) -> RestateDurableSleepFuture
    ctx.service_call(handler_fn, arg, idempotency_key=None, headers=None) -> call future
      (``await fut`` = output, ``await fut.invocation_id()``, ``await fut.cancel_invocation()``)
    ctx.object_call(handler_fn, key, arg, ...) / ctx.workflow_call(handler_fn, key, arg, ...)
    ctx.service_send(handler_fn, arg, send_delay=None, idempotency_key=None, headers=None)
    ctx.object_send(handler_fn, key, arg, send_delay=None, ...) / ctx.workflow_send(...)
      -> SendHandle (``await h.invocation_id()``, ``await h.cancel_invocation()``)
    ctx.generic_call(service, handler, arg: bytes, key=None, idempotency_key=None, headers=None,
      scope=None, limit_key=None) -> call future of bytes
    ctx.generic_send(service, handler, arg: bytes, key=None, send_delay=None, ...) -> SendHandle
    ctx.awakeable(serde=, type_hint=) -> (id, future)
    ctx.resolve_awakeable(id, value, serde=); ctx.reject_awakeable(id, failure_message, code=500)
    ctx.cancel_invocation(invocation_id); ctx.attach_invocation(invocation_id, serde=, type_hint=)
    ctx.signal(name) -> future; ctx.resolve_signal(invocation_id, name, value);
      ctx.reject_signal(invocation_id, name, message, code=500)
      (named signals: the VM emits them under V5 and V6 too, as SendSignalCommand 0x0410 with
      a signal name and a suspension on that name)
    ctx.get(name, serde=, type_hint=, entry_name=) -> future; ctx.state_keys() -> future;
      ctx.set(name, value); ctx.clear(name); ctx.clear_all()       (get/state_keys awaited)
    ctx.promise(name) -> DurablePromise: await .value(); await .peek() (None if unresolved);
      await .resolve(value); await .reject(message, code=500)
    ctx.key(); ctx.request().id (the invocation id); ctx.uuid(); ctx.random(); ctx.time()
    restate.select(**futures) -> [name, value]; restate.wait_completed(*futures);
      restate.gather(*futures); restate.as_completed(*futures)
    restate.TerminalError(message, status_code=500, metadata=None)

Not in 1.2: a handler cannot attach by idempotency key or workflow key (attach takes an
invocation id only), nor peek at another invocation's output: the VM has no call that emits
GetInvocationOutputCommand (0x0413). Lazy state (GetLazyState*) is the server's choice
(``StartMessage.partial_state``), not the app's.

Step counting: every ``ctx.run`` closure calls ``count(ctx, step)``, which appends the line
``"{invocation_id} {step}\\n"`` to the file named by ``RESTATE_APP_COUNTS`` (when set), so a
test can check that each step ran exactly once however often the handler was replayed.
"""

import json
import os
import time
from datetime import timedelta

import restate
from restate import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    TerminalError,
    WorkflowContext,
    WorkflowSharedContext,
)

COUNTS_ENV = "RESTATE_APP_COUNTS"
FLAKY_FAILS_ENV = "RESTATE_APP_FLAKY_FAILS"  # how many attempts of "flaky" fail (default 2)
ATTEMPTS_ENV = "RESTATE_APP_ATTEMPTS"  # a file: one line per run of ``ten``'s handler
STEP_MS_ENV = "RESTATE_APP_STEP_MS"  # how long each counted step takes (default 0)
#: "2": the handlers changed under running invocations (``wait_awakeable`` runs a step first)
VARIANT_ENV = "RESTATE_APP_VARIANT"


def count(ctx: Context, step: str) -> int:
    """Record one execution of ``step`` by this invocation; how many so far (this one included),
    0 when ``RESTATE_APP_COUNTS`` is not set. Call it only inside a ``ctx.run`` closure."""
    pause_ms = float(os.environ.get(STEP_MS_ENV) or 0)
    if pause_ms:
        time.sleep(pause_ms / 1000)  # a closure runs on the SDK's thread: a slow step
    path = os.environ.get(COUNTS_ENV)
    if not path:
        return 0
    invocation_id = ctx.request().id
    line = f"{invocation_id} {step}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: whole lines, even across threads
    finally:
        os.close(fd)
    with open(path, encoding="utf-8") as fh:
        return sum(1 for seen in fh if seen == line)


# --- Greeter: runs, a terminal failure, a retried step -------------------------------------

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    def step() -> str:
        count(ctx, "greet")
        return f"Hello {name}!"

    return await ctx.run("greet", step)


def note_attempt(ctx: Context) -> None:
    """Record that the handler ran (an attempt, or a replay) in ``RESTATE_APP_ATTEMPTS``:
    outside any step on purpose, so a test sees how often the endpoint was invoked."""
    path = os.environ.get(ATTEMPTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(ctx.request().id + "\n")


@greeter.handler()
async def ten(ctx: Context, name: str) -> int:
    note_attempt(ctx)

    def step(i: int) -> int:
        count(ctx, f"step-{i}")
        return i

    done = 0
    for i in range(10):
        await ctx.run(f"step-{i}", step, args=(i,))
        done += 1
    return done


@greeter.handler()
async def fail_terminal(ctx: Context) -> str:
    raise TerminalError("nope", status_code=400)


@greeter.handler()
async def flaky(ctx: Context, name: str) -> str:
    """The step "flaky" raises a plain exception on its first ``RESTATE_APP_FLAKY_FAILS``
    executions (2 by default; counted in the step-count file, so never without one)."""
    fails = int(os.environ.get(FLAKY_FAILS_ENV, "2"))

    def step() -> str:
        n = count(ctx, "flaky")
        if n and n <= fails:
            raise RuntimeError(f"flaky attempt {n} of {fails + 1}")
        return f"Hello {name}!"

    return await ctx.run_typed("flaky", step)


# --- Counter: state --------------------------------------------------------------------------

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value = (await ctx.get("count") or 0) + delta
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("count") or 0


@counter.handler()
async def reset(ctx: ObjectContext) -> None:
    ctx.clear("count")


@counter.handler()
async def clear_all(ctx: ObjectContext) -> None:
    ctx.clear_all()


@counter.handler(kind="shared")
async def keys(ctx: ObjectSharedContext) -> list[str]:
    return sorted(await ctx.state_keys())


@counter.handler()
async def set_many(ctx: ObjectContext, values: dict) -> None:
    for name, value in sorted(values.items()):
        ctx.set(name, value)


# --- Sleeper: a durable timer between two runs ------------------------------------------------

sleeper = restate.Service("Sleeper")


@sleeper.handler()
async def sleep(ctx: Context, ms: int) -> str:
    def before() -> str:
        count(ctx, "before")
        return "before"

    def after() -> str:
        count(ctx, "after")
        return "after"

    first = await ctx.run_typed("before", before, RunOptions(type_hint=str))
    await ctx.sleep(timedelta(milliseconds=ms))
    second = await ctx.run_typed("after", after, RunOptions(type_hint=str))
    return f"{first} {ms} ms {second}"


# --- Caller: calls and sends, typed and generic ------------------------------------------------

caller = restate.Service("Caller")


@caller.handler()
async def call_greet(ctx: Context, name: str) -> str:
    return await ctx.service_call(greet, name)


@caller.handler()
async def send_greet(ctx: Context, name: str) -> str:
    """A one-way send of Greeter.greet delayed by 500 ms; the callee's invocation id."""
    handle = ctx.service_send(greet, name, send_delay=timedelta(milliseconds=500))
    return await handle.invocation_id()


@caller.handler()
async def call_counter(ctx: Context, req: dict) -> int:
    """``{"key": str, "delta": int}``: Counter/KEY/add(delta), its output."""
    return await ctx.object_call(add, req["key"], req["delta"])


@caller.handler()
async def call_idempotent(ctx: Context, name: str) -> str:
    """Greeter.greet with the idempotency key ``greet-{name}``: one greeting per name."""
    return await ctx.service_call(greet, name, idempotency_key=f"greet-{name}")


@caller.handler()
async def sleep_idempotent(ctx: Context, ms: int) -> str:
    """Sleeper.sleep(ms) with the idempotency key ``sleep-{ms}``: callers share one sleeper."""
    return await ctx.service_call(sleep, ms, idempotency_key=f"sleep-{ms}")


@caller.handler()
async def call_ritornello(ctx: Context, name: str) -> str:
    """RGreeter.greet(name), a service of Ritornello's own, through the untyped call API."""
    out = await ctx.generic_call("RGreeter", "greet", json.dumps(name).encode())
    return json.loads(out)


@caller.handler()
async def send_ritornello(ctx: Context, name: str) -> str:
    """A one-way untyped send of RGreeter.greet(name); the callee's invocation id."""
    handle = ctx.generic_send("RGreeter", "greet", json.dumps(name).encode())
    return await handle.invocation_id()


# --- Awaiter / AwakeableBox: awakeables ----------------------------------------------------------

box = restate.VirtualObject("AwakeableBox")


@box.handler()
async def put(ctx: ObjectContext, awakeable_id: str) -> None:
    ctx.set("id", awakeable_id)


@box.handler(name="get", kind="shared")
async def box_get(ctx: ObjectSharedContext) -> str | None:
    return await ctx.get("id")


awaiter = restate.Service("Awaiter")


@awaiter.handler()
async def wait_awakeable(ctx: Context) -> str:
    """Creates an awakeable, sends its id to AwakeableBox/box/put (read it with
    AwakeableBox/box/get) and returns the value it is resolved with."""
    if os.environ.get(VARIANT_ENV) == "2":  # a deploy that changed the handler's journal
        await ctx.run_typed("variant-2", lambda: count(ctx, "variant-2"))
    awakeable_id, value = ctx.awakeable(type_hint=str)
    ctx.object_send(put, "box", awakeable_id)
    return await value


@awaiter.handler()
async def resolve(ctx: Context, req: dict) -> None:
    """``{"id": str, "value": any JSON}``."""
    ctx.resolve_awakeable(req["id"], req["value"])


@awaiter.handler()
async def reject(ctx: Context, req: dict) -> None:
    """``{"id": str, "reason": str}``."""
    ctx.reject_awakeable(req["id"], req["reason"])


# --- Signup: a workflow and its durable promise -------------------------------------------------

signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    ctx.set("email", email)
    value = await ctx.promise("confirmed", type_hint=str).value()
    return "confirmed:" + value


@signup.handler()
async def confirm(ctx: WorkflowSharedContext, value: str) -> None:
    await ctx.promise("confirmed", type_hint=str).resolve(value)


@signup.handler()
async def peek(ctx: WorkflowSharedContext) -> str | None:
    return await ctx.promise("confirmed", type_hint=str).peek()


# --- Canceller: cancellation ------------------------------------------------------------------

canceller = restate.Service("Canceller")


@canceller.handler()
async def long_sleep(ctx: Context) -> str:
    await ctx.sleep(timedelta(seconds=60))
    return "woke"


@canceller.handler()
async def cancel(ctx: Context, invocation_id: str) -> None:
    ctx.cancel_invocation(invocation_id)


@canceller.handler()
async def start_and_cancel(ctx: Context) -> str:
    """Sends Canceller.long_sleep, cancels it through its send handle; its invocation id."""
    handle = ctx.service_send(long_sleep, None)
    invocation_id = await handle.invocation_id()
    await handle.cancel_invocation()
    return invocation_id


# --- Attacher: attach to another invocation -----------------------------------------------------

attacher = restate.Service("Attacher")


@attacher.handler()
async def attach(ctx: Context, invocation_id: str) -> object:
    """The output (any JSON) of the invocation ``invocation_id``, once it completes."""
    return await ctx.attach_invocation(invocation_id)


@attacher.handler()
async def send_and_attach(ctx: Context, name: str) -> str:
    """Sends Greeter.greet(name) and attaches to it by its invocation id."""
    handle = ctx.service_send(greet, name)
    return await ctx.attach_invocation(await handle.invocation_id(), type_hint=str)


# --- Racer: combinators ---------------------------------------------------------------------------

racer = restate.Service("Racer")


@racer.handler()
async def race(ctx: Context) -> str:
    """A 10 ms timer against an awakeable nobody resolves: "timeout"."""
    _, never = ctx.awakeable(type_hint=str)
    winner, value = await restate.select(timeout=ctx.sleep(timedelta(milliseconds=10)), awk=never)
    return "timeout" if winner == "timeout" else f"awakeable:{value}"


@racer.handler()
async def first_of(ctx: Context, name: str) -> str:
    """Greeter.greet(name) against a 30 s timer, by ``wait_completed``: the greeting."""
    call = ctx.service_call(greet, name)
    timer = ctx.sleep(timedelta(seconds=30))
    done, _ = await restate.wait_completed(call, timer)
    return await call if call in done else "timeout"


@racer.handler()
async def both(ctx: Context, name: str) -> list[str]:
    """Greeter.greet(name) and Greeter.greet(name + "!") together, by ``gather``."""
    one, two = ctx.service_call(greet, name), ctx.service_call(greet, name + "!")
    await restate.gather(one, two)
    return [await one, await two]


# --- Signaller: named signals on an invocation ----------------------------------------------------

signaller = restate.Service("Signaller")


@signaller.handler()
async def wait_signal(ctx: Context) -> str:
    """Waits for the signal "go" on this invocation; its value."""
    return await ctx.signal("go", type_hint=str)


@signaller.handler()
async def send_signal(ctx: Context, req: dict) -> None:
    """``{"invocation_id": str, "value": str}``: resolves the signal "go" of that invocation."""
    ctx.resolve_signal(req["invocation_id"], "go", req["value"])


SERVICES = [
    greeter,
    counter,
    sleeper,
    caller,
    box,
    awaiter,
    signup,
    canceller,
    attacher,
    racer,
    signaller,
]

app = restate.app(services=SERVICES)
