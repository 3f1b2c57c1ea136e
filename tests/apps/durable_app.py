"""An AWS Lambda durable function, written with AWS's SDK as on AWS (nothing of Ritornello's):
served by ``ritornello lambda-emulator`` for tests/integration/test_aws_durable.py.

The event's ``mode`` picks what it does; every step appends ``<execution> <step>`` to the file
``DURABLE_LEDGER`` names, so a test counts how often each step ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python import (
    DurableContext,
    StepContext,
    StepError,
    durable_execution,
)
from aws_durable_execution_sdk_python.config import (
    CallbackConfig,
    Duration,
    JitterStrategy,
    StepConfig,
    StepSemantics,
)
from aws_durable_execution_sdk_python.exceptions import CallbackTimeoutError
from aws_durable_execution_sdk_python.retries import RetryStrategyConfig, create_retry_strategy
from aws_durable_execution_sdk_python.waits import WaitForConditionConfig, WaitForConditionDecision


def _ledger(ctx: DurableContext, line: str) -> None:
    execution = ctx.state.durable_execution_arn.rsplit("/", 1)[-1]
    with Path(os.environ["DURABLE_LEDGER"]).open("a") as fh:
        fh.write(f"{execution} {line}\n")


@durable_execution
def lambda_handler(event: dict[str, Any], ctx: DurableContext) -> Any:
    mode = event.get("mode")
    if mode == "steps":

        def add(n: int) -> Any:
            def run(_: StepContext) -> int:
                _ledger(ctx, f"add-{n}")
                return n

            return run

        total = sum(ctx.step(add(n), name=f"add-{n}") for n in event["numbers"])
        return {"total": total}
    if mode == "wait":
        before = ctx.step(lambda _: _ledger(ctx, "before") or "before", name="before")
        ctx.wait(Duration.from_seconds(event.get("seconds", 1)), name="pause")
        after = ctx.step(lambda _: _ledger(ctx, "after") or "after", name="after")
        return [before, after]
    if mode == "callback":
        # optional timeouts (seconds): the handler catches a timed-out callback
        config = CallbackConfig(
            timeout=Duration.from_seconds(event.get("timeout_s", 0)),
            heartbeat_timeout=Duration.from_seconds(event.get("heartbeat_s", 0)),
        )
        callback = ctx.create_callback(name="approval", config=config)

        def publish(_: StepContext) -> str:
            # where a test finds the callback id (as an email or a queue would carry it)
            Path(event["publish_to"]).write_text(callback.callback_id)
            _ledger(ctx, "publish")
            return callback.callback_id

        ctx.step(publish, name="publish")
        try:
            outcome = {"approved": callback.result()}
        except CallbackTimeoutError as exc:
            outcome = {"timed_out": str(exc)}
        if not event.get("after_s"):
            return outcome
        # the outcome seen, as a step named for it (a replay that saw another outcome would
        # run another step), then a wait: the execution replays the callback after it
        seen = next(iter(outcome))
        ctx.step(lambda _: _ledger(ctx, f"saw-{seen}") or seen, name=f"saw-{seen}")
        ctx.wait(Duration.from_seconds(event["after_s"]), name="after")
        return outcome
    if mode == "zombie":
        ctx.step(lambda _: _ledger(ctx, "first") or 1, name="first")

        def slow(_: StepContext) -> str:
            marker = Path(event["marker"])
            if not marker.exists():  # the first run only: outlive the attempt's timeout
                marker.write_text("slept")
                time.sleep(event["sleep_s"])
            _ledger(ctx, "slow")
            return "slow"

        return ctx.step(slow, name="slow")
    if mode == "retry":
        # fails its first attempt; retried after 1 s (a durable timer), then succeeds
        strategy = create_retry_strategy(
            RetryStrategyConfig(
                max_attempts=3,
                initial_delay=Duration.from_seconds(1),
                jitter_strategy=JitterStrategy.NONE,
            )
        )

        def flaky(step: StepContext) -> str:
            _ledger(ctx, "flaky")
            marker = Path(event["marker"])
            if not marker.exists():
                marker.write_text("failed once")
                raise RuntimeError("first attempt fails")
            return "recovered"

        return ctx.step(flaky, name="flaky", config=StepConfig(retry_strategy=strategy))
    if mode == "parallel":
        batch = ctx.parallel(
            [lambda c, n=n: c.step(lambda _: n * 10, name=f"times-{n}") for n in (1, 2, 3)],
            name="fan",
        )
        return sorted(batch.get_results())
    if mode == "big":  # a result over Lambda's 6 MB answer: the SDK checkpoints it instead
        ctx.step(lambda _: _ledger(ctx, "big") or 1, name="before")
        return "x" * event["size"]
    if mode == "invoke":  # another durable function (this one, registered), by name
        child = ctx.invoke(event["function"], event["payload"], name="child")
        return {"child": child}
    if mode == "map":
        batch = ctx.map(event["items"], lambda c, item, i, _: item * item, name="squares")
        return batch.get_results()
    if mode == "condition":  # polls until the state reaches 2, one second apart

        def poll(state: int, _: Any) -> int:
            _ledger(ctx, "poll")
            return state + 1

        def strategy(state: int, _attempt: int) -> WaitForConditionDecision:
            if state >= 2:
                return WaitForConditionDecision.stop_polling()
            return WaitForConditionDecision.continue_waiting(Duration.from_seconds(1))

        config = WaitForConditionConfig(wait_strategy=strategy, initial_state=0)
        return ctx.wait_for_condition(poll, config=config)
    if mode == "at-most-once":  # its first run sleeps inside the step (a test kills -9 then)

        def once(_: StepContext) -> str:
            _ledger(ctx, "once")
            marker = Path(event["marker"])
            if not marker.exists():
                marker.write_text("started")
                time.sleep(event["sleep_s"])
            return "done"

        config = StepConfig(
            step_semantics=StepSemantics.AT_MOST_ONCE_PER_RETRY,
            retry_strategy=create_retry_strategy(RetryStrategyConfig(max_attempts=1)),
        )
        try:
            return ctx.step(once, name="once", config=config)
        except StepError as exc:
            return f"interrupted: {exc}"
    if mode == "failing-step":  # a step that fails for good: its one attempt raises

        def out_of_stock(_: StepContext) -> str:
            _ledger(ctx, "out-of-stock")
            raise RuntimeError("no stock left")

        once = StepConfig(retry_strategy=create_retry_strategy(RetryStrategyConfig(max_attempts=1)))
        return ctx.step(out_of_stock, name="reserve", config=once)
    if mode == "fail":
        ctx.step(lambda _: _ledger(ctx, "doomed") or 1, name="doomed")
        raise ValueError("the order is invalid")
    raise ValueError(f"unknown mode {mode!r}")
