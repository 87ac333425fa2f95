// Headless Chromium on SwiftShader's WebGPU, driven through the DevTools protocol over one
// browser WebSocket (Node's built-in WebSocket; no npm package). Shared by the end-to-end tests
// (test.mjs: classify and explain; fine_tune.mjs: fine-tuning).

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/// The tests' command line: `--gradlens BIN --out DIR [--chromium BIN]` and any other
/// `--name value` pairs (in `args`); DIR is made if missing.
export function commandLine() {
  const args = Object.fromEntries(
    process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
  );
  const outDir = resolve(args.out ?? "target/web-e2e");
  mkdirSync(outDir, { recursive: true });
  return { args, outDir, gradlens: args.gradlens ?? "target/release/gradlens", chromium: args.chromium ?? "/usr/bin/chromium" };
}

/// Starts Chromium and resolves to { send, consoleLines, openTab, evaluate, waitFor, close }.
export async function launchBrowser(chromium, extraFlags = []) {
  const profile = mkdtempSync(join(tmpdir(), "gradlens-chromium-"));
  const browser = spawn(chromium, [
    "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader",
    "--enable-features=Vulkan", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", `--user-data-dir=${profile}`,
    "--remote-debugging-port=0", "--window-size=1100,1200", ...extraFlags, "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let browserLog = "";
  const endpoint = await new Promise((ok, reject) => {
    const timer = setTimeout(() => reject(new Error(`Chromium did not start:\n${browserLog}`)), 60_000);
    browser.stderr.on("data", (chunk) => {
      browserLog += chunk;
      const match = browserLog.match(/DevTools listening on (ws:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        ok(match[1]);
      }
    });
    browser.on("exit", (code) => reject(new Error(`Chromium exited (${code}):\n${browserLog}`)));
  });

  const socket = new WebSocket(endpoint);
  await new Promise((ok, reject) => { socket.onopen = ok; socket.onerror = reject; });
  let nextId = 1;
  const pending = new Map();
  const consoleLines = [];
  const listeners = [];
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id && pending.has(message.id)) {
      const { ok, reject } = pending.get(message.id);
      pending.delete(message.id);
      message.error ? reject(new Error(JSON.stringify(message.error))) : ok(message.result);
    } else if (message.method === "Runtime.consoleAPICalled") {
      consoleLines.push(`${message.params.type}: ${message.params.args.map((a) => a.value ?? a.description).join(" ")}`);
    } else if (message.method === "Runtime.exceptionThrown") {
      consoleLines.push(`exception: ${message.params.exceptionDetails.exception?.description ?? message.params.exceptionDetails.text}`);
    }
    for (const listener of listeners) listener(message);
  };
  const send = (method, params = {}, sessionId) => new Promise((ok, reject) => {
    const id = nextId++;
    pending.set(id, { ok, reject });
    socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
  });

  // A new tab on `url` (running `beforeLoad` in it first, if given); resolves to its session.
  const openTab = async (url, beforeLoad) => {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
    await send("Runtime.enable", {}, sessionId);
    await send("Page.enable", {}, sessionId);
    if (beforeLoad) await send("Page.addScriptToEvaluateOnNewDocument", { source: beforeLoad }, sessionId);
    await send("Page.navigate", { url }, sessionId);
    return sessionId;
  };
  // The value of `expression` in the tab (awaited when it is a promise).
  const evaluate = async (sessionId, expression) => {
    const { result, exceptionDetails } = await send("Runtime.evaluate",
      { expression, returnByValue: true, awaitPromise: true }, sessionId);
    if (exceptionDetails) throw new Error(`${expression}: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`);
    return result.value;
  };
  // Polls `expression` in real time until it is truthy; fails after `timeoutMs` with the
  // page's status line, or as soon as the page throws.
  const waitFor = async (sessionId, expression, timeoutMs, what = expression) => {
    const started = Date.now();
    for (;;) {
      const value = await evaluate(sessionId, expression);
      if (value) return value;
      const exception = consoleLines.find((line) => line.startsWith("exception:"));
      if (exception) throw new Error(`the page threw: ${exception}`);
      if (Date.now() - started > timeoutMs) {
        const status = await evaluate(sessionId, "document.getElementById('status')?.textContent ?? ''");
        throw new Error(`${what}: not done in ${timeoutMs / 1000} s; the page's status: ${status}`);
      }
      await new Promise((ok) => setTimeout(ok, 500));
    }
  };

  const browserExited = new Promise((ok) => browser.on("exit", ok));
  // Chromium closed through the protocol shuts its helper processes down too (a killed main
  // process leaves them writing into the profile); killed if it does not exit in time.
  const close = async () => {
    send("Browser.close").catch(() => {});
    const timer = setTimeout(() => browser.kill("SIGKILL"), 10_000);
    await browserExited;
    clearTimeout(timer);
    rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
  };
  return { send, consoleLines, listeners, openTab, evaluate, waitFor, close };
}
