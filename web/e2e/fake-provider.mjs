// A fake OpenAI-compatible provider on loopback for the e2e tests: streams
// Chat Completions chunks chosen by the last user message.
//   "tool"   → first a call of `lookup` (a tool the agent does not have, so the
//              run gets an error result), then a text answer
//   "slow"   → 80 words, one every 120 ms, ending with "THE END."
//   "shorter" (a steer) → "Short answer."
//   "shell"  → a call of `shell_run` (`echo approved-$((6*7))`, which waits for
//              approval), then "The shell said 42." when its result came back,
//              or "I was not allowed to run it." when it was denied
//   anything else → a short Markdown reply with a Rust code block
import http from "node:http";

const MODEL = "fake-model";

function chunk(delta, finish = null) {
  return { id: "chatcmpl-e2e", object: "chat.completion.chunk", created: 0, model: MODEL, choices: [{ index: 0, delta, finish_reason: finish }] };
}

function text(parts) {
  return (m) => (typeof m.content === "string" ? m.content : Array.isArray(m.content) ? m.content.filter((p) => p.type === "text").map((p) => p.text).join("") : "");
}

function plan(body) {
  const messages = body.messages ?? [];
  const last = messages[messages.length - 1] ?? {};
  const lastUser = [...messages].reverse().find((m) => m.role === "user");
  const said = lastUser ? text()(lastUser) : "";
  if (last.role === "tool") {
    const result = text()(last);
    if (/shell/i.test(said)) {
      if (result.includes("approved-42")) return { words: ["The shell ", "said 42."], delay: 20 };
      return { words: ["I was not ", "allowed to run it."], delay: 20 };
    }
    return { words: ["Tool ", "round ", "done."], delay: 20 };
  }
  if (/shell/i.test(said)) return { tool: { id: `call_shell_${messages.length}`, name: "shell_run", arguments: JSON.stringify({ command: "echo approved-$((6*7))" }) } };
  if (/shorter/i.test(said)) return { words: ["Short ", "answer."], delay: 20 };
  if (/tool/i.test(said)) return { tool: { id: "call_e2e_1", name: "lookup", arguments: '{"query":"weather"}' } };
  if (/slow/i.test(said)) {
    // a reload takes longer on a loaded machine: that run is longer
    const words = Array.from({ length: /reload/i.test(said) ? 150 : 80 }, (_, i) => `word${i + 1} `);
    words.push("THE END.");
    return { words, delay: 120 };
  }
  return {
    words: ["Hello ", "from ", "the ", "**fake** ", "model.\n\n", "```rust\n", 'fn main() {\n    println!("hi");\n}\n', "```\n"],
    delay: 30,
  };
}

export function startFakeProvider() {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    let raw = "";
    for await (const c of req) raw += c;
    if (req.method === "GET" && req.url.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: MODEL, object: "model" }] }));
      return;
    }
    if (req.method !== "POST" || !req.url.endsWith("/chat/completions")) {
      res.writeHead(404).end();
      return;
    }
    const body = JSON.parse(raw || "{}");
    requests.push(body);
    const p = plan(body);
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    let closed = false;
    res.on("close", () => (closed = true));
    send(chunk({ role: "assistant", content: "" }));
    if (p.tool) {
      send(chunk({ tool_calls: [{ index: 0, id: p.tool.id, type: "function", function: { name: p.tool.name, arguments: "" } }] }));
      send(chunk({ tool_calls: [{ index: 0, function: { arguments: p.tool.arguments } }] }));
      send(chunk({}, "tool_calls"));
    } else {
      for (const w of p.words) {
        if (closed) return;
        send(chunk({ content: w }));
        await new Promise((r) => setTimeout(r, p.delay));
      }
      send(chunk({}, "stop"));
    }
    send({ id: "chatcmpl-e2e", object: "chat.completion.chunk", created: 0, model: MODEL, choices: [], usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 } });
    res.end("data: [DONE]\n\n");
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({ baseUrl: `http://127.0.0.1:${port}/v1`, requests, close: () => server.close(), model: MODEL });
    });
  });
}
