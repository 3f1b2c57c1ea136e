// An AWS Lambda durable function written with AWS's durable execution SDK for JavaScript, as on
// AWS (nothing of Ritornello's): served by `ritornello lambda-emulator tests/aws_durable_node/
// app.mjs` for tests/integration/test_aws_durable_node.py.
//
// The event's `mode` picks what it does; every step appends `<execution> <step>` to the file
// DURABLE_LEDGER names, so a test counts how often each step ran.

import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import {
  CallbackTimeoutError,
  StepSemantics,
  withDurableExecution,
} from "@aws/durable-execution-sdk-js";

function ledger(ctx, line) {
  const execution = ctx.executionContext.durableExecutionArn.split("/").pop();
  appendFileSync(process.env.DURABLE_LEDGER, `${execution} ${line}\n`);
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

export const handler = withDurableExecution(async (event, ctx) => {
  const mode = event.mode;
  if (mode === "steps") {
    let total = 0;
    for (const n of event.numbers) {
      total += await ctx.step(`add-${n}`, async () => {
        ledger(ctx, `add-${n}`);
        return n;
      });
    }
    return { total };
  }
  if (mode === "wait") {
    const before = await ctx.step("before", async () => (ledger(ctx, "before"), "before"));
    await ctx.wait("pause", { seconds: event.seconds ?? 1 });
    const after = await ctx.step("after", async () => (ledger(ctx, "after"), "after"));
    return [before, after];
  }
  if (mode === "callback") {
    // optional timeouts (seconds): the handler catches a timed-out callback
    const config = {};
    if (event.timeout_s) config.timeout = { seconds: event.timeout_s };
    if (event.heartbeat_s) config.heartbeatTimeout = { seconds: event.heartbeat_s };
    const [result, callbackId] = await ctx.createCallback("approval", config);
    await ctx.step("publish", async () => {
      // where a test finds the callback id (as an email or a queue would carry it)
      writeFileSync(event.publish_to, callbackId);
      ledger(ctx, "publish");
      return callbackId;
    });
    try {
      return { approved: await result };
    } catch (error) {
      if (error instanceof CallbackTimeoutError) return { timed_out: error.message };
      throw error;
    }
  }
  if (mode === "wait-for-callback") {
    const approved = await ctx.waitForCallback("approval", async (callbackId) => {
      writeFileSync(event.publish_to, callbackId);
      ledger(ctx, "submit");
    });
    return { approved };
  }
  if (mode === "parallel") {
    const batch = await ctx.parallel(
      "fan",
      [1, 2, 3].map((n) => async (c) => c.step(`times-${n}`, async () => n * 10)),
    );
    return batch.getResults().sort((a, b) => a - b);
  }
  if (mode === "map") {
    const batch = await ctx.map("squares", event.items, async (c, item) =>
      c.step(`square-${item}`, async () => item * item),
    );
    return batch.getResults();
  }
  if (mode === "slow-step") {
    // its first run sleeps inside the step (a test kills -9 the orchestrator then)
    await ctx.step("first", async () => (ledger(ctx, "first"), 1));
    return await ctx.step("slow", async () => {
      if (!existsSync(event.marker)) {
        writeFileSync(event.marker, "slept");
        await sleep(event.sleep_ms);
      }
      ledger(ctx, "slow");
      return "slow";
    });
  }
  if (mode === "retry") {
    // fails its first attempt; retried after 1 s (a durable timer), then succeeds
    return await ctx.step(
      "flaky",
      async () => {
        ledger(ctx, "flaky");
        if (!existsSync(event.marker)) {
          writeFileSync(event.marker, "failed once");
          throw new Error("first attempt fails");
        }
        return "recovered";
      },
      { retryStrategy: (_err, attempt) => ({ shouldRetry: attempt < 3, delay: { seconds: 1 } }) },
    );
  }
  if (mode === "condition") {
    // polls until the state reaches 2, one second apart
    return await ctx.waitForCondition(
      "until-two",
      async (state) => (ledger(ctx, "poll"), state + 1),
      {
        initialState: 0,
        waitStrategy: (state) =>
          state >= 2 ? { shouldContinue: false } : { shouldContinue: true, delay: { seconds: 1 } },
      },
    );
  }
  if (mode === "child") {
    return await ctx.runInChildContext("group", async (child) => {
      const a = await child.step("one", async () => 1);
      const b = await child.step("two", async () => 2);
      return a + b;
    });
  }
  if (mode === "invoke") {
    // another durable function (this one, registered) or a Ritornello handler, by name
    return { child: await ctx.invoke("child", event.function, event.payload) };
  }
  if (mode === "at-most-once") {
    // its first run sleeps inside the step (a test kills -9 the orchestrator then)
    try {
      return await ctx.step(
        "once",
        async () => {
          ledger(ctx, "once");
          if (!existsSync(event.marker)) {
            writeFileSync(event.marker, "started");
            await sleep(event.sleep_ms);
          }
          return "done";
        },
        { semantics: StepSemantics.AtMostOncePerRetry, retryStrategy: () => ({ shouldRetry: false }) },
      );
    } catch (err) {
      return `interrupted: ${err.message}`;
    }
  }
  if (mode === "big") {
    // a result over Lambda's 6 MB answer: the SDK checkpoints it instead
    await ctx.step("before", async () => (ledger(ctx, "big"), 1));
    return "x".repeat(event.size);
  }
  if (mode === "fail") {
    await ctx.step("doomed", async () => (ledger(ctx, "doomed"), 1));
    throw new Error("the order is invalid");
  }
  throw new Error(`unknown mode ${JSON.stringify(mode)}`);
});
