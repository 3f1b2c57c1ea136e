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
// * a request payload over 6 MiB: 413 RequestEntityTooLargeException; a result over 6 MiB: a
//   `Function.ResponseSizeTooLarge` function error; a payload that is not JSON: 400
//   InvalidRequestContentException; any other route: 404 ResourceNotFoundException;
// * `X-Amz-Invocation-Type: Event` answers 202 and runs the handler in the background;
//   `DryRun` answers 204; past `--reserved-concurrency N` running at once: 429.
//
// Invocations run concurrently on Node's one event loop (an async handler, as the durable SDK's
// is, interleaves at its awaits; a handler that blocks the loop blocks every invocation). As
// Lambda sets it, AWS_REGION is set (from AWS_DEFAULT_REGION, else us-east-1) when absent, so
// the AWS SDK for JavaScript inside the function finds a region. Not emulated: signatures, the
// function timeout, cold starts, logs. Needs only Node's standard library.
//
// Usage: node lambda_emulator.mjs APP --host H --port P [--reserved-concurrency N]

import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const MAX_PAYLOAD = 6 * 1024 * 1024; // Lambda's synchronous request and response limit
const ACCOUNT = "123456789012";
const REGION = "us-east-1";
const FUNCTION_TIMEOUT_MS = 900_000;
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

function emulator(handler, reservedConcurrency) {
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
    const deadline = Date.now() + FUNCTION_TIMEOUT_MS;
    const context = {
      functionName: fn,
      functionVersion: version,
      invokedFunctionArn: arn,
      awsRequestId: requestId,
      memoryLimitInMB: "128",
      logGroupName: `/aws/lambda/${fn}`,
      logStreamName: `emulator/${requestId}`,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
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
    const done = run(handler, event, context).finally(() => {
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

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  process.env.AWS_REGION ||= process.env.AWS_DEFAULT_REGION || REGION;
  const module = await import(pathToFileURL(resolve(opts.app)).href);
  const handler = module.handler ?? module.default?.handler;
  if (typeof handler !== "function") {
    console.error(`${opts.app}: export a function named \`handler\``);
    process.exit(2);
  }
  const server = createServer(emulator(handler, opts.reservedConcurrency));
  server.listen(opts.port, opts.host, () => {
    const url = `http://${opts.host}:${opts.port}`;
    console.log(`Lambda Invoke API for ${opts.app} on ${url} (AWS_ENDPOINT_URL_LAMBDA=${url})`);
  });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
}

main().catch((err) => {
  console.error(err?.stack || String(err));
  process.exit(1);
});
