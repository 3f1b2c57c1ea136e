// `ritornello lambda-emulator APP.mjs`: Lambda's Invoke REST API on loopback for a Node handler.
//
// The Node twin of _lambda_emulator.py (same contract, see its docstring): it serves
// `POST /2015-03-31/functions/{FunctionName}/invocations` (any function name, partial or full
// ARN, any `:QUALIFIER` or `?Qualifier=`) by calling the `handler` APP exports (as Lambda's Node
// runtime calls `index.handler`) with the JSON payload and a Lambda context object. As on AWS:
//
// * 200 with the handler's JSON result (`null` for `undefined`), `X-Amz-Executed-Version`;
// * a handler that throws or rejects: 200 with `X-Amz-Function-Error: Unhandled` and
//   `{"errorType", "errorMessage", "trace"}` (the Node runtime's shape);
// * a function that exits or crashes mid-invoke (`process.exit`, a signal): 200 with
//   `X-Amz-Function-Error: Unhandled` and `{"errorType": "Runtime.ExitError", "errorMessage":
//   "RequestId: ID Error: Runtime exited with error: exit status 1"}`; past the function
//   timeout (900 s): `Sandbox.Timedout`;
// * a request payload over 6 MiB: 413 RequestEntityTooLargeException; a result over 6 MiB: a
//   `Function.ResponseSizeTooLarge` function error; a payload that is not JSON: 400
//   InvalidRequestContentException; any other route: 404 ResourceNotFoundException;
// * `X-Amz-Invocation-Type: Event` answers 202 and runs the handler in the background;
//   `DryRun` answers 204; past `--reserved-concurrency N` running at once: 429.
//
// Each function (its name and version, as invoked) runs in worker processes of its own
// (`child_process.fork` of this file with `--worker`), as the Python emulator's do: one invoke
// per worker at a time, a new worker (a cold start: the module imported) for each concurrent
// invoke, a worker that dies mid-invoke answered as a runtime exit and replaced, at most 16
// idle workers kept (the least recently used ended past that). A worker ends when its IPC
// channel closes: when the emulator exits or is killed, even with SIGKILL. The module is
// imported once before serving (in the first worker): one that does not load stops the command.
// As Lambda sets it, AWS_REGION is set (from AWS_DEFAULT_REGION, else us-east-1) when absent, so
// the AWS SDK for JavaScript inside the function finds a region. Not emulated: signatures, logs.
// Needs only Node's standard library.
//
// Usage: node lambda_emulator.mjs APP --host H --port P [--reserved-concurrency N]

import { fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const MAX_PAYLOAD = 6 * 1024 * 1024; // Lambda's synchronous request and response limit
const ACCOUNT = "123456789012";
const REGION = "us-east-1";
const FUNCTION_TIMEOUT_MS = 900_000;
const MAX_IDLE = 16; // idle workers kept, over all functions
const SELF = fileURLToPath(import.meta.url);
// Signal names as Lambda's runtime interface (Go's os/exec) prints them in a runtime exit.
const SIGNALS = {
  SIGKILL: "killed",
  SIGSEGV: "segmentation fault",
  SIGTERM: "terminated",
  SIGABRT: "aborted",
  SIGBUS: "bus error",
  SIGINT: "interrupt",
  SIGHUP: "hangup",
  SIGILL: "illegal instruction",
  SIGFPE: "floating point exception",
  SIGPIPE: "broken pipe",
  SIGQUIT: "quit",
};
const PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;
const FULL_ARN = /^arn:[a-z-]+:lambda:([a-z0-9-]+):(\d{12}):function:(.+)$/;

function parseArgs(argv) {
  const [app, ...rest] = argv;
  const opts = { app, host: "127.0.0.1", port: 9001, reservedConcurrency: null };
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, value] = [rest[i], rest[i + 1]];
    if (flag === "--host") opts.host = value;
    else if (flag === "--port") opts.port = Number(value);
    else if (flag === "--reserved-concurrency") opts.reservedConcurrency = Number(value);
    else throw new Error(`unknown option ${flag}`);
  }
  if (!app) throw new Error("usage: lambda_emulator.mjs APP [--host H] [--port P]");
  return opts;
}

/** [function name, version or alias, invoked ARN] for a FunctionName path parameter. */
function functionOf(name, qualifier) {
  let [region, account, rest] = [REGION, ACCOUNT, name];
  const m = FULL_ARN.exec(name);
  if (m) [region, account, rest] = [m[1], m[2], m[3]];
  else if (/^\d{12}:function:/.test(name)) {
    const parts = name.split(":");
    account = parts[0];
    rest = parts.slice(2).join(":");
  }
  const colon = rest.indexOf(":");
  const fn = colon < 0 ? rest : rest.slice(0, colon);
  const inName = colon < 0 ? "" : rest.slice(colon + 1);
  const q = qualifier || inName || "";
  const arn = `arn:aws:lambda:${region}:${account}:function:${fn}${q ? `:${q}` : ""}`;
  return [fn, q || "$LATEST", arn];
}

function respond(res, status, body, headers) {
  res.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** An AWS service error, shaped as Lambda sends it (SDKs read x-amzn-ErrorType). */
function serviceError(res, status, code, message) {
  respond(res, status, JSON.stringify({ Type: "User", message }), {
    "content-type": "application/json",
    "x-amzn-errortype": code,
    "x-amzn-requestid": randomUUID(),
  });
}

function errorPayload(err) {
  const error = err instanceof Error ? err : new Error(String(err));
  return JSON.stringify({
    errorType: error.name || "Error",
    errorMessage: error.message,
    trace: String(error.stack || "").split("\n"),
  });
}

/** Call the handler: [succeeded, JSON text of the result or the error]. */
async function run(handler, event, context) {
  let result;
  try {
    if (handler.length >= 3) {
      // a callback-style handler (event, context, callback)
      result = await new Promise((ok, fail) => {
        const out = handler(event, context, (err, value) => (err ? fail(err) : ok(value)));
        if (out && typeof out.then === "function") out.then(ok, fail);
      });
    } else {
      result = await handler(event, context);
    }
  } catch (err) {
    return [false, errorPayload(err)];
  }
  let out;
  try {
    out = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    return [
      false,
      JSON.stringify({
        errorType: "Runtime.MarshalError",
        errorMessage: `Unable to marshal response: ${err.message}`,
        trace: [],
      }),
    ];
  }
  const size = Buffer.byteLength(out);
  if (size > MAX_PAYLOAD) {
    return [
      false,
      JSON.stringify({
        errorType: "Function.ResponseSizeTooLarge",
        errorMessage:
          `Response payload size (${size} bytes) exceeded maximum allowed payload size ` +
          `(${MAX_PAYLOAD} bytes).`,
      }),
    ];
  }
  return [true, out];
}

/** A runtime error (not the handler's): Lambda's `{"errorType", "errorMessage"}`. */
function runtimeError(errorType, errorMessage) {
  return JSON.stringify({ errorType, errorMessage });
}

/** How Lambda words a runtime's end in a Runtime.ExitError. */
function exitReason(code, signal) {
  if (signal) return `Runtime exited with error: signal: ${SIGNALS[signal] || signal}`;
  if (code === 0) return "Runtime exited without providing a reason";
  return `Runtime exited with error: exit status ${code}`;
}

/** One worker process (a function's sandbox) and its one invoke at a time. */
class Worker {
  constructor(app) {
    this.child = fork(SELF, ["--worker", app], { stdio: "inherit" });
    this.key = null;
    this.pending = null; // [resolve, requestId, timer] of the invoke it runs
    this.exited = false;
    this.ready = new Promise((ok, fail) => {
      this.started = { ok, fail };
    });
    this.child.on("message", (msg) => this.onMessage(msg));
    this.child.on("exit", (code, signal) => this.onExit(code, signal));
    // a send to a worker that just died: its "exit" answers the invoke it was sent
    this.child.on("error", (err) => console.error(`lambda-emulator worker: ${err.message}`));
  }

  onMessage(msg) {
    if (this.started) {
      const { ok, fail } = this.started;
      this.started = null;
      if (msg.ready) ok();
      else fail(Object.assign(new Error(msg.initError), { type: msg.type, code: msg.code }));
      return;
    }
    const pending = this.pending;
    if (!pending) return;
    this.pending = null;
    clearTimeout(pending[2]);
    pending[0]([msg.ok, msg.out, true]);
  }

  onExit(code, signal) {
    this.exited = true;
    const reason = exitReason(code, signal);
    if (this.started) {
      this.started.fail(Object.assign(new Error(reason), { type: "Runtime.ExitError", code: 1 }));
      this.started = null;
    }
    const pending = this.pending;
    if (!pending) return;
    this.pending = null;
    clearTimeout(pending[2]);
    const message = `RequestId: ${pending[1]} Error: ${reason}`;
    pending[0]([false, runtimeError("Runtime.ExitError", message), false]);
  }

  /** Run one invoke: [succeeded, answer text, whether the worker is still usable]. */
  invoke(request, requestId, timeoutMs) {
    return new Promise((ok) => {
      if (this.exited) {
        const message = `RequestId: ${requestId} Error: ${exitReason(1, null)}`;
        ok([false, runtimeError("Runtime.ExitError", message), false]);
        return;
      }
      const timer = setTimeout(() => {
        if (this.pending?.[1] !== requestId) return;
        this.pending = null;
        this.child.kill("SIGKILL");
        const seconds = (timeoutMs / 1000).toFixed(2);
        const message = `RequestId: ${requestId} Error: Task timed out after ${seconds} seconds`;
        ok([false, runtimeError("Sandbox.Timedout", message), false]);
      }, timeoutMs);
      this.pending = [ok, requestId, timer];
      this.child.send(request);
    });
  }
}

/** The workers of every function: one invoke per worker, idle ones kept warm (at most
 * MAX_IDLE, the least recently used ended past that). */
class Pool {
  constructor(app) {
    this.app = app;
    this.idle = new Map(); // key -> [Worker]
    this.lru = new Set(); // idle workers, oldest first
    this.spare = null; // the first worker, for whichever function needs one first
    this.live = new Set();
  }

  newWorker() {
    const worker = new Worker(this.app);
    this.live.add(worker);
    worker.child.on("exit", () => this.live.delete(worker));
    return worker;
  }

  async start() {
    const worker = this.newWorker();
    await worker.ready;
    this.spare = worker;
  }

  async take(key) {
    const idle = this.idle.get(key) || [];
    while (idle.length) {
      const worker = idle.pop();
      this.lru.delete(worker);
      if (!worker.exited) return worker; // else it died idle (killed from outside): not used
    }
    let worker = this.spare;
    this.spare = null;
    if (!worker || worker.exited) {
      worker = this.newWorker();
      await worker.ready;
    }
    worker.key = key;
    return worker;
  }

  giveBack(worker) {
    if (!this.idle.has(worker.key)) this.idle.set(worker.key, []);
    this.idle.get(worker.key).push(worker);
    this.lru.add(worker);
    while (this.lru.size > MAX_IDLE) {
      const oldest = this.lru.values().next().value;
      this.lru.delete(oldest);
      const list = this.idle.get(oldest.key);
      list.splice(list.indexOf(oldest), 1);
      oldest.child.kill();
    }
  }

  /** One invoke of function `key`: [succeeded, answer text]. */
  async run(key, request, requestId, timeoutMs) {
    let worker;
    try {
      worker = await this.take(key);
    } catch (err) {
      return [false, runtimeError(err.type || "Runtime.Unknown", err.message)];
    }
    const [ok, out, usable] = await worker.invoke(request, requestId, timeoutMs);
    if (usable) this.giveBack(worker);
    return [ok, out];
  }

  close() {
    for (const worker of this.live) worker.child.kill();
  }
}

/** Read the body; [bytes, too large] (a body over the limit is read and dropped). */
function readBody(req) {
  return new Promise((ok, fail) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size <= MAX_PAYLOAD) chunks.push(chunk);
    });
    req.on("end", () => ok([size > MAX_PAYLOAD ? null : Buffer.concat(chunks), size > MAX_PAYLOAD]));
    req.on("error", fail);
  });
}

function emulator(pool, reservedConcurrency) {
  let running = 0;
  const serve = async (req, res) => {
    const [body, tooLarge] = await readBody(req);
    const url = new URL(req.url, "http://localhost");
    const m = PATH.exec(url.pathname);
    if (!m || req.method !== "POST") {
      serviceError(res, 404, "ResourceNotFoundException", `no route ${req.method} ${url.pathname}`);
      return;
    }
    if (tooLarge) {
      serviceError(
        res,
        413,
        "RequestEntityTooLargeException",
        `Request must be smaller than ${MAX_PAYLOAD} bytes for the InvokeFunction operation`,
      );
      return;
    }
    let event = {};
    const text = body.toString("utf8");
    if (text.trim()) {
      try {
        event = JSON.parse(text);
      } catch (err) {
        serviceError(
          res,
          400,
          "InvalidRequestContentException",
          `Could not parse request body: ${err.message}`,
        );
        return;
      }
    }
    const [fn, version, arn] = functionOf(
      decodeURIComponent(m[1]),
      url.searchParams.get("Qualifier"),
    );
    const requestId = randomUUID();
    const context = {
      functionName: fn,
      functionVersion: version,
      invokedFunctionArn: arn,
      awsRequestId: requestId,
      memoryLimitInMB: "128",
      logGroupName: `/aws/lambda/${fn}`,
      logStreamName: `emulator/${requestId}`,
      callbackWaitsForEmptyEventLoop: true,
    };
    const common = {
      "x-amzn-requestid": requestId,
      "x-amz-executed-version": /^\d+$/.test(version) ? version : "$LATEST",
    };
    const kind = req.headers["x-amz-invocation-type"] || "RequestResponse";
    if (kind === "DryRun") {
      respond(res, 204, "", common);
      return;
    }
    if (reservedConcurrency !== null && running >= reservedConcurrency) {
      console.log(`throttled an Invoke of ${fn}: ${running} running (reserved concurrency)`);
      serviceError(res, 429, "TooManyRequestsException", "Rate Exceeded.");
      return;
    }
    running += 1;
    const request = { context, body: text, timeoutMs: FUNCTION_TIMEOUT_MS };
    const done = pool.run(`${fn}:${version}`, request, requestId, FUNCTION_TIMEOUT_MS);
    done.finally(() => {
      running -= 1;
    });
    if (kind === "Event") {
      respond(res, 202, "", common);
      return;
    }
    const [ok, out] = await done;
    const headers = { "content-type": "application/json", ...common };
    if (!ok) headers["x-amz-function-error"] = "Unhandled";
    respond(res, 200, out, headers);
  };
  return (req, res) =>
    serve(req, res).catch((err) => {
      console.error(err?.stack || String(err));
      if (!res.headersSent) serviceError(res, 500, "ServiceException", String(err));
    });
}

/** A worker: import APP, then run one invoke per message; end when the channel closes. */
async function workerMain(app) {
  process.on("disconnect", () => process.exit(0)); // the emulator ended (or was killed)
  process.on("SIGINT", () => {}); // Ctrl-C reaches the process group: the emulator ends us
  let handler;
  try {
    const module = await import(pathToFileURL(resolve(app)).href);
    handler = module.handler ?? module.default?.handler;
  } catch (err) {
    const initError = err?.stack || String(err);
    process.send({ initError, code: 1, type: "Runtime.ImportModuleError" }, () => process.exit(1));
    return;
  }
  if (typeof handler !== "function") {
    const initError = `${app}: export a function named \`handler\``;
    process.send({ initError, code: 2, type: "Runtime.HandlerNotFound" }, () => process.exit(2));
    return;
  }
  process.on("message", async ({ context, body, timeoutMs }) => {
    const deadline = Date.now() + timeoutMs;
    context.getRemainingTimeInMillis = () => Math.max(0, deadline - Date.now());
    const event = body.trim() ? JSON.parse(body) : {};
    const [ok, out] = await run(handler, event, context);
    process.send({ ok, out });
  });
  process.send({ ready: true });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  process.env.AWS_REGION ||= process.env.AWS_DEFAULT_REGION || REGION;
  const pool = new Pool(opts.app);
  try {
    await pool.start(); // the module imported once before serving
  } catch (err) {
    console.error(err.message);
    process.exit(err.code || 1);
  }
  const server = createServer(emulator(pool, opts.reservedConcurrency));
  server.listen(opts.port, opts.host, () => {
    const url = `http://${opts.host}:${opts.port}`;
    console.log(`Lambda Invoke API for ${opts.app} on ${url} (AWS_ENDPOINT_URL_LAMBDA=${url})`);
  });
  process.on("exit", () => pool.close());
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
}

const entry = process.argv[2] === "--worker" ? workerMain(process.argv[3]) : main();
entry.catch((err) => {
  console.error(err?.stack || String(err));
  process.exit(1);
});
