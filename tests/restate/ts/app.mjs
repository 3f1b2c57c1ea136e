// Node 20 lacks Promise.withResolvers (Node 22+), which the SDK calls at run time:
if (!Promise.withResolvers) Promise.withResolvers = function () { let resolve, reject; const promise = new this((a, b) => { resolve = a; reject = b; }); return { promise, resolve, reject }; };

/*
A test endpoint written with the real Restate TypeScript SDK (`@restatedev/restate-sdk` 1.17.x,
plain ESM, no build step) for Ritornello's integration tests
(tests/restate/test_ts_request_response.py). It mirrors tests/restate/apps/py_app.py where the
TS SDK has the API. Run: `node tests/restate/ts/app.mjs PORT`.

Served over HTTP/1.1 on 127.0.0.1:PORT with Node's `http.createServer` and the SDK's
`createEndpointHandler({services, bidirectional: false})` (dist/node.js: an HTTP/1 request goes
to the SDK's `nodeHttp1Handler` in REQUEST_RESPONSE mode; `bidirectional: false` also pins it).
The same handler answers `GET /health` (200 "OK") and `GET /discover`.

Not in 1.17: a handler cannot peek at another invocation's output (the VM has
`sys_get_invocation_output`, but no Context method calls it, so the SDK never sends
GetInvocationOutputCommand), and a send handle (`InvocationHandle`) has only `invocationId`:
cancelling a sent invocation goes through `ctx.invocation(id).cancel()`.

Step counting: every ctx.run closure calls `count(ctx, step)`, which appends the line
`"{invocation_id} {step}\n"` to the file named by RESTATE_APP_COUNTS (when set).
*/

import fs from "node:fs";
import http from "node:http";
import http2 from "node:http2";

// Imported after the polyfill (static imports would be evaluated before it).
const restate = await import("@restatedev/restate-sdk");
const { TerminalError, RestatePromise, rpc } = restate;

function count(ctx, step) {
  const path = process.env.RESTATE_APP_COUNTS;
  if (!path) return 0;
  const line = `${ctx.request().id} ${step}\n`;
  fs.appendFileSync(path, line); // one small O_APPEND write
  return fs.readFileSync(path, "utf8").split("\n").filter((l) => l + "\n" === line).length;
}

// --- Greeter: runs, a terminal failure -----------------------------------------------------

const greeter = restate.service({
  name: "Greeter",
  handlers: {
    greet: async (ctx, name) =>
      ctx.run("greet", () => {
        count(ctx, "greet");
        return `Hello ${name}!`;
      }),

    ten: async (ctx, _name) => {
      let done = 0;
      for (let i = 0; i < 10; i++) {
        await ctx.run(`step-${i}`, () => {
          count(ctx, `step-${i}`);
          return i;
        });
        done += 1;
      }
      return done;
    },

    fail_terminal: async (_ctx) => {
      throw new TerminalError("nope", { errorCode: 400 });
    },
  },
});

// --- Counter: state ----------------------------------------------------------------------------

const counter = restate.object({
  name: "Counter",
  handlers: {
    add: async (ctx, delta) => {
      const value = ((await ctx.get("count")) ?? 0) + delta;
      ctx.set("count", value);
      return value;
    },
    get: restate.handlers.object.shared(async (ctx) => (await ctx.get("count")) ?? 0),
    reset: async (ctx) => {
      ctx.clear("count");
    },
    clear_all: async (ctx) => {
      ctx.clearAll();
    },
    keys: restate.handlers.object.shared(async (ctx) => (await ctx.stateKeys()).sort()),
    set_many: async (ctx, values) => {
      for (const name of Object.keys(values).sort()) ctx.set(name, values[name]);
    },
  },
});

// --- Sleeper: a durable timer between two runs --------------------------------------------------

const sleeper = restate.service({
  name: "Sleeper",
  handlers: {
    sleep: async (ctx, ms) => {
      const first = await ctx.run("before", () => {
        count(ctx, "before");
        return "before";
      });
      await ctx.sleep(ms);
      const second = await ctx.run("after", () => {
        count(ctx, "after");
        return "after";
      });
      return `${first} ${ms} ms ${second}`;
    },
  },
});

// --- Caller: calls and sends, typed and generic -------------------------------------------------

const caller = restate.service({
  name: "Caller",
  handlers: {
    call_greet: async (ctx, name) => ctx.serviceClient(greeter).greet(name),

    /** A one-way send of Greeter.greet delayed by 500 ms; the callee's invocation id. */
    send_greet: async (ctx, name) => {
      const handle = ctx.serviceSendClient(greeter).greet(name, rpc.sendOpts({ delay: 500 }));
      return await handle.invocationId;
    },

    /** `{"key": str, "delta": int}`: Counter/KEY/add(delta), its output. */
    call_counter: async (ctx, req) => ctx.objectClient(counter, req.key).add(req.delta),

    /** Greeter.greet with the idempotency key `greet-{name}`: one greeting per name. */
    call_idempotent: async (ctx, name) =>
      ctx.serviceClient(greeter).greet(name, rpc.opts({ idempotencyKey: `greet-${name}` })),

    /** Sleeper.sleep(ms) with the idempotency key `sleep-{ms}`: callers share one sleeper. */
    sleep_idempotent: async (ctx, ms) =>
      ctx.serviceClient(sleeper).sleep(ms, rpc.opts({ idempotencyKey: `sleep-${ms}` })),

    /** RGreeter.greet(name), a service of Ritornello's own, through the untyped call API. */
    call_ritornello: async (ctx, name) => {
      const out = await ctx.genericCall({
        service: "RGreeter",
        method: "greet",
        parameter: new TextEncoder().encode(JSON.stringify(name)),
      });
      return JSON.parse(new TextDecoder().decode(out));
    },

    /** A one-way untyped send of RGreeter.greet(name); the callee's invocation id. */
    send_ritornello: async (ctx, name) => {
      const handle = ctx.genericSend({
        service: "RGreeter",
        method: "greet",
        parameter: new TextEncoder().encode(JSON.stringify(name)),
      });
      return await handle.invocationId;
    },
  },
});

// --- Awaiter / AwakeableBox: awakeables -----------------------------------------------------------

const box = restate.object({
  name: "AwakeableBox",
  handlers: {
    put: async (ctx, awakeableId) => {
      ctx.set("id", awakeableId);
    },
    get: restate.handlers.object.shared(async (ctx) => ctx.get("id")), // null before a put
  },
});

const awaiter = restate.service({
  name: "Awaiter",
  handlers: {
    /** Creates an awakeable, sends its id to AwakeableBox/box/put and returns its value. */
    wait_awakeable: async (ctx) => {
      const { id, promise } = ctx.awakeable();
      ctx.objectSendClient(box, "box").put(id);
      return await promise;
    },
    /** `{"id": str, "value": any JSON}`. */
    resolve: async (ctx, req) => {
      ctx.resolveAwakeable(req.id, req.value);
    },
    /** `{"id": str, "reason": str}`. */
    reject: async (ctx, req) => {
      ctx.rejectAwakeable(req.id, req.reason);
    },
  },
});

// --- Signup: a workflow and its durable promise ---------------------------------------------------

const signup = restate.workflow({
  name: "Signup",
  handlers: {
    run: async (ctx, email) => {
      ctx.set("email", email);
      const value = await ctx.promise("confirmed");
      return "confirmed:" + value;
    },
    // a workflow's other handlers are shared by default
    confirm: async (ctx, value) => {
      await ctx.promise("confirmed").resolve(value);
    },
    peek: async (ctx) => await ctx.promise("confirmed").peek(), // undefined until resolved
  },
});

// --- Canceller: cancellation ----------------------------------------------------------------------

const canceller = restate.service({
  name: "Canceller",
  handlers: {
    long_sleep: async (ctx) => {
      await ctx.sleep(60_000);
      return "woke";
    },
    /** Cancels the invocation `invocationId` (the VM sends a SendSignalCommand of the built-in
    cancel signal: Ritornello's journal shows it as a "signal" entry). */
    cancel: async (ctx, invocationId) => {
      ctx.invocation(invocationId).cancel();
    },
    /** Sends Canceller.long_sleep and cancels it by the id its send handle gives (a send
    handle has no cancel of its own in 1.17); the callee's invocation id. */
    start_and_cancel: async (ctx) => {
      const invocationId = await ctx.serviceSendClient(canceller).long_sleep().invocationId;
      ctx.invocation(invocationId).cancel();
      return invocationId;
    },
  },
});

// --- Attacher: attach to another invocation -------------------------------------------------------

const attacher = restate.service({
  name: "Attacher",
  handlers: {
    /** The output (any JSON) of the invocation `invocationId`, once it completes. */
    attach: async (ctx, invocationId) => ctx.invocation(invocationId).attach(),
    /** Sends Greeter.greet(name) and attaches to it by its invocation id (the older
    `ctx.attach(id)`, the same AttachInvocationCommand). */
    send_and_attach: async (ctx, name) => {
      const invocationId = await ctx.serviceSendClient(greeter).greet(name).invocationId;
      return await ctx.attach(invocationId);
    },
  },
});

// --- Signaller: named signals on an invocation ----------------------------------------------------

const signaller = restate.service({
  name: "Signaller",
  handlers: {
    /** Waits for the signal "go" on this invocation; its value. */
    wait_signal: async (ctx) => ctx.signal("go"),
    /** `{"invocation_id": str, "value": any JSON}`: resolves the signal "go" of that invocation. */
    send_signal: async (ctx, req) => {
      ctx.invocation(req.invocation_id).signal("go").resolve(req.value);
    },
    /** `{"invocation_id": str, "reason": str}`: rejects the signal "go" of that invocation. */
    reject_signal: async (ctx, req) => {
      ctx.invocation(req.invocation_id).signal("go").reject(req.reason);
    },
  },
});

// --- Racer: combinators ---------------------------------------------------------------------------

const racer = restate.service({
  name: "Racer",
  handlers: {
    /** A 10 ms timer against an awakeable nobody resolves: "timeout". */
    race: async (ctx) => {
      const never = ctx.awakeable().promise;
      return await RestatePromise.race([
        ctx.sleep(10).map(() => "timeout"),
        never.map((v) => `awakeable:${v}`),
      ]);
    },
    /** Greeter.greet(name) against a 30 s timer: the greeting. */
    first_of: async (ctx, name) => {
      const call = ctx.serviceClient(greeter).greet(name);
      const timer = ctx.sleep(30_000).map(() => "timeout");
      return await RestatePromise.race([call, timer]);
    },
    /** Greeter.greet(name) and Greeter.greet(name + "!") together. */
    both: async (ctx, name) => {
      const client = ctx.serviceClient(greeter);
      return await RestatePromise.all([client.greet(name), client.greet(name + "!")]);
    },
  },
});

const services = [
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
];

const port = Number(process.argv[2] ?? process.env.PORT ?? 9080);
// `--http2`: h2c only, BIDI_STREAM, as `restate.serve()` serves (it binds every interface;
// this binds loopback only).
const h2 = process.argv.includes("--http2");
const server = h2
  ? http2.createServer(restate.createEndpointHandler({ services }))
  : http.createServer(restate.createEndpointHandler({ services, bidirectional: false }));
server.listen(port, "127.0.0.1", () => {
  const how = h2 ? "h2c, BIDI_STREAM" : "HTTP/1.1, REQUEST_RESPONSE";
  console.log(`restate ts app listening on 127.0.0.1:${port} (${how})`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
