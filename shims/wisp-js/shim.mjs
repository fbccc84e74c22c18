// The shim for wisp-js 0.5.0's client (@mercuryworkshop/wisp-js, ClientConnection), under
// the shim protocol of harness/SHIM.md: one JSON request per line on stdin, one JSON
// event per line on stdout. Uses the pinned package scripts/install-servers.sh installs
// into .tools/wisp-js (override the directory with WISP_JS_DIR).
//
//   wisp-conformance client --shim "node shims/wisp-js/shim.mjs"
//
// wisp-js reports almost no errors of its own: a stream ends with onclose(reason), the
// connection with onclose/onerror. The mapping onto the suite's WispError names is
// below (errorOf, the UDP check in open); everything else is what the library does.

import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// Protocol lines are the only thing on stdout: the library's own logging goes to stderr.
for (const name of ["log", "info", "warn", "debug", "error"]) {
  console[name] = (...args) => process.stderr.write(args.join(" ") + "\n");
}
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
// wisp-js throws from its WebSocket message handler on packets it cannot parse; Node would
// end the process. Keep the shim alive to report what the client did, and say so.
process.on("uncaughtException", (e) => {
  console.error(`uncaught exception in wisp-js: ${e?.stack ?? e}`);
  emit({ type: "log", text: `uncaught exception in wisp-js: ${String(e?.message ?? e).split("\n")[0]}` });
});

const here = dirname(fileURLToPath(import.meta.url));
const dir = process.env.WISP_JS_DIR ?? resolve(here, "../../.tools/wisp-js");
const pkg = join(dir, "node_modules/@mercuryworkshop/wisp-js");
const { ClientConnection } = await import(pathToFileURL(join(pkg, "src/client/connection.mjs")));
const ext = await import(pathToFileURL(join(pkg, "src/extensions.mjs")));

const HELLO = {
  type: "hello",
  name: "wisp-js",
  version: "0.5.0",
  protocol: 1,
  // No certificate auth, stream confirmation, required extensions or options; the
  // password record is always the draft-5 layout; close() of the connection takes no
  // reason, and JavaScript has no `drop`.
  capabilities: ["v1", "v2", "udp", "motd", "password_draft5", "close_reason"],
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const other = (message) => ({ name: "Other", message: String(message) });

async function run(plan, finish) {
  let closedByUs = false;
  const streams = new Map(); // alias -> {stream, data: [], end, waiters: []}
  const wake = (s) => { for (const w of s.waiters.splice(0)) w(); };
  const versionWanted = plan.version;
  const extensions = [];
  for (const e of plan.extensions) {
    if (e.name === "udp") extensions.push(new ext.UDPExtension({ client_config: {} }));
    if (e.name === "motd") extensions.push(new ext.MOTDExtension({ client_config: {} }));
    if (e.name === "password") {
      extensions.push(new ext.PasswordAuthExtension({
        client_config: { username: e.username ?? "", password: e.password ?? "" },
      }));
    }
  }
  const conn = new ClientConnection(plan.url, {
    wisp_version: versionWanted,
    wisp_extensions: versionWanted === 2 ? extensions : null,
  });
  let wsClosed = false;
  const handshake = new Promise((resolve) => {
    conn.onopen = () => resolve(null);
    conn.onclose = () => { wsClosed = true; resolve({ name: "WsImplSocketClosed" }); };
    conn.onerror = () => { wsClosed = true; resolve({ name: "WsImplError", message: "WebSocket error" }); };
  });

  const act = async () => {
    const error = await handshake;
    if (error) {
      emit({ type: "handshake", error });
      return;
    }
    const v2 = conn.wisp_version === 2;
    emit({
      type: "handshake",
      version: v2 ? "2.0" : "1.2",
      downgraded: versionWanted === 2 && !v2,
      // On v1 (and after a downgrade) wisp-js keeps UDP enabled: v1 has it implicitly.
      extensions: v2 ? Object.keys(conn.server_exts).map(Number) : conn.udp_enabled ? [1] : [],
      ...(conn.server_motd != null ? { motd: conn.server_motd } : {}),
    });
    for (const [index, action] of plan.actions.entries()) {
      emit({ type: "action", index, ...(await step(action)) });
    }
  };

  const step = async (a) => {
    const s = streams.get(a.stream);
    const usable = s && !s.dropped;
    switch (a.op) {
      case "open": {
        const type = a.kind === "udp" ? "udp" : a.kind === "tcp" ? "tcp" : Number(a.kind);
        let stream;
        try {
          stream = conn.create_stream(a.host, a.port, type);
        } catch (e) {
          const udp = /udp is not enabled/.test(String(e));
          return { error: udp ? { name: "ExtensionsNotSupported", ids: [1], message: String(e) } : other(e) };
        }
        const slot = { stream, data: [], end: null, waiters: [], read: 0 };
        stream.onmessage = (bytes) => { slot.data.push(Buffer.from(bytes)); wake(slot); };
        stream.onclose = (reason) => {
          // cleanup() (the WebSocket closed) marks the connection down before it closes
          // the streams with 0x03; a CLOSE from the server arrives while it is up.
          const byConnection = !conn.connected && !conn.connecting;
          slot.end = byConnection
            ? { by: "connection", reason, error: { name: "WsImplSocketClosed" } }
            : { by: "server", reason };
          wake(slot);
        };
        streams.set(a.stream, slot);
        return { stream_id: stream.stream_id };
      }
      case "send": {
        if (!usable) return { error: other("not open") };
        const bytes = Buffer.from(a.data, "hex");
        for (let i = 0; i < a.times; i++) s.stream.send(new Uint8Array(bytes));
        return {};
      }
      case "close": {
        if (!usable) return { error: other("not open") };
        s.stream.close(a.reason);
        if (!s.end) s.end = { by: "client", reason: a.reason };
        wake(s);
        return {};
      }
      case "read":
      case "wait_closed": {
        if (!usable) return { error: other("not open") };
        const until = a.op === "read" ? a.until : "end";
        const got = [];
        for (;;) {
          while (s.data.length) got.push(s.data.shift());
          const total = s.read + got.reduce((n, b) => n + b.length, 0);
          if (until !== "end" && total >= until) break;
          if (s.end) break;
          await new Promise((r) => s.waiters.push(r));
        }
        const data = Buffer.concat(got);
        s.read += data.length;
        return { data: data.toString("hex"), ...(s.end ? { eof: true } : {}) };
      }
      case "drop": {
        if (s) s.dropped = true;
        return {};
      }
      case "close_mux": {
        closedByUs = true;
        conn.close();
        return {};
      }
      case "sleep": {
        await sleep(a.ms);
        return {};
      }
      default:
        return { error: other(`unknown action ${a.op}`) };
    }
  };

  const finished = finish.then((info) => ({ info }));
  const first = await Promise.race([act().then(() => null), finished]);
  let info;
  if (first === null) {
    emit({ type: "actions_done" });
    info = (await finished).info;
  } else {
    info = first.info;
  }
  for (const [alias, s] of streams) {
    emit({ type: "stream", stream: alias, end: s.end });
  }
  const deadline = Date.now() + (info.mux_wait_ms ?? 0);
  while (!wsClosed && Date.now() < deadline) await sleep(10);
  const state = !wsClosed ? "running" : closedByUs ? "ok" : { error: { name: "WsImplSocketClosed" } };
  emit({ type: "mux", state });
  emit({ type: "done" });
}

const lines = createInterface({ input: process.stdin });
let resolveFinish;
const finish = new Promise((r) => { resolveFinish = r; });
let started = false;
lines.on("line", (line) => {
  if (!line.trim()) return;
  let request;
  try {
    request = JSON.parse(line);
  } catch (e) {
    console.error(`not a request: ${line}`);
    process.exit(2);
  }
  if (request.type === "describe") {
    emit(HELLO);
    process.exit(0);
  } else if (request.type === "run" && !started) {
    started = true;
    run(request, finish).then(
      () => process.exit(0),
      (e) => { console.error(e?.stack ?? String(e)); process.exit(1); },
    );
  } else if (request.type === "finish") {
    resolveFinish(request);
  }
});
// The harness went away: finish with what there is.
lines.on("close", () => resolveFinish({ mux_wait_ms: 0 }));
