// The reference code interpreter (lib/code-interpreter.mjs) checked two
// ways: E2B's own client, @e2b/code-interpreter in debug mode (E2B_DEBUG,
// E2B_SANDBOX_URL: it sends every call to the sandbox URL with
// E2b-Sandbox-Port: 49999, which the server routes to its code
// interpreter), and the raw bytes of /execute against the wire format of
// e2b-dev/code-interpreter template/server (stream.py: json.dumps lines,
// ", " and ": " separators, non-ASCII as \uXXXX, the end line last;
// messaging.py: number_of_executions first, None fields dropped).
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./helpers.mjs";

describe("code interpreter", () => {
  let server;
  let sbx;

  before(async () => {
    server = await startServer();
    process.env.E2B_DEBUG = "true";
    process.env.E2B_SANDBOX_URL = server.url;
    const { Sandbox } = await import("@e2b/code-interpreter");
    sbx = await Sandbox.create();
  });
  after(async () => {
    await server?.stop();
  });

  test("@e2b/code-interpreter runCode: logs, results with formats, execution count", async () => {
    const seen = [];
    const x = await sbx.runCode(
      "import sys\nprint('hi')\nprint('e', file=sys.stderr)\n" +
        "class R:\n  def _repr_html_(self): return '<b/>'\n  def _repr_png_(self): return b'PNG'\n" +
        "display(R())\n40 + 2\n",
      { onStdout: (m) => seen.push(`out:${m.line}`), onResult: (r) => seen.push(`result:${r.formats()}`) },
    );
    assert.deepEqual(x.logs, { stdout: ["hi\n"], stderr: ["e\n"] });
    assert.equal(x.error, undefined);
    assert.ok(x.executionCount >= 1);
    assert.equal(x.results.length, 2);
    assert.equal(x.results[0].isMainResult, false);
    assert.deepEqual(x.results[0].formats(), ["html", "png"]);
    assert.equal(x.results[0].png, "UE5H");
    assert.equal(x.results[1].isMainResult, true);
    assert.equal(x.text, "42");
    assert.deepEqual(seen, ["out:hi\n", "result:html,png", "result:"]);
    assert.equal((await sbx.runCode("'abc'")).text, "abc"); // result.py strips the quotes
  });

  test("@e2b/code-interpreter: an exception is the execution's error", async () => {
    const x = await sbx.runCode("def f():\n  raise ValueError('bad')\nf()\n");
    assert.equal(x.error.name, "ValueError");
    assert.equal(x.error.value, "bad");
    assert.match(x.error.traceback, /in f\n[\s\S]*ValueError: bad\n$/);
  });

  test("@e2b/code-interpreter contexts: create, state, list, restart, remove", async () => {
    const ctx = await sbx.createCodeContext({ cwd: "/tmp/ctx" });
    assert.equal(ctx.language, "python");
    assert.equal(ctx.cwd, "/tmp/ctx");
    await sbx.runCode("y = 5", { context: ctx });
    assert.equal((await sbx.runCode("y", { context: ctx })).text, "5");
    assert.ok((await sbx.listCodeContexts()).some((c) => c.id === ctx.id));
    await sbx.restartCodeContext(ctx);
    assert.equal((await sbx.runCode("y", { context: ctx })).error.name, "NameError");
    await sbx.removeCodeContext(ctx);
    await assert.rejects(sbx.runCode("1", { context: ctx }), (e) => e.constructor.name === "NotFoundError");
  });

  test("raw /execute bytes: Python's json.dumps, the order, the end line", async () => {
    const res = await fetch(`${server.url}/execute`, {
      method: "POST",
      headers: { "e2b-sandbox-port": "49999", "content-type": "application/json" },
      body: JSON.stringify({ code: "print('h\\u00e9')\n1" }),
    });
    assert.equal(res.status, 200);
    const lines = (await res.text()).split("\n");
    const body = lines.filter((l) => l && l !== '{"type": "keepalive"}');
    assert.match(body[0], /^\{"type": "number_of_executions", "execution_count": \d+\}$/);
    assert.match(body[1], /^\{"type": "stdout", "text": "h\\u00e9\\n", "timestamp": "[^"]+\+00:00"\}$/);
    assert.equal(body[2], '{"type": "result", "text": "1", "extra": {}, "is_main_result": true}');
    assert.equal(body[3], '{"type": "end_of_execution"}');
    assert.equal(lines.at(-1), "");

    const both = await fetch(`${server.url}/execute`, {
      method: "POST",
      headers: { "e2b-sandbox-port": "49999" },
      body: JSON.stringify({ code: "1", language: "python", context_id: "x" }),
    });
    assert.equal(both.status, 400);
    assert.equal(await both.text(), "Only one of context_id or language can be provided");
  });
});
