import { describe, expect, it } from "vitest";
import type { AgentEvent, Message } from "../api/types";
import { applyAll, applyEvent, blocksFromMessages, emptyRun, isLive, toolResults, totals } from "./run";
import { parseSse } from "../api/stream";

const S = "0190b7a2-0000-7000-8000-000000000001";
const C = "0190b7a2-0000-7000-8000-000000000002";

const events: { seq: number; event: AgentEvent }[] = [
  { seq: 1, event: { type: "RUN_STARTED", threadId: C, runId: S } },
  { seq: 2, event: { type: "TEXT_MESSAGE_START", messageId: "m1", role: "assistant" } },
  { seq: 3, event: { type: "TEXT_MESSAGE_CONTENT", messageId: "m1", delta: "Hel" } },
  { seq: 4, event: { type: "TEXT_MESSAGE_CONTENT", messageId: "m1", delta: "lo" } },
  { seq: 5, event: { type: "TEXT_MESSAGE_END", messageId: "m1" } },
  {
    seq: 6,
    event: { type: "RUN_FINISHED", threadId: C, runId: S, result: { status: "committed", usage: { m: { input_tokens: 7, output_tokens: 2 } } } },
  },
];

describe("applyEvent", () => {
  it("streams text deltas into one message and finishes", () => {
    const run = applyAll(emptyRun(S), events);
    expect(run.blocks).toEqual([{ kind: "text", id: "m1", text: "Hello", done: true }]);
    expect(run.status).toBe("committed");
    expect(run.finished).toBe(true);
    expect(run.lastSeq).toBe(6);
    expect(totals(run.usage)).toEqual({ input: 7, output: 2 });
    expect(isLive(run)).toBe(false);
  });

  it("ignores a duplicated event (same seq twice)", () => {
    const once = applyAll(emptyRun(S), events.slice(0, 4));
    const twice = applyEvent(once, 4, events[3].event);
    expect(twice).toBe(once);
    expect(twice.blocks[0]).toMatchObject({ text: "Hello" });
  });

  it("ignores a replay from the start after a reconnect without Last-Event-ID", () => {
    const partial = applyAll(emptyRun(S), events.slice(0, 4));
    // the server replays 1..6; the first four are already applied
    const resumed = applyAll(partial, events);
    expect(resumed.blocks).toEqual([{ kind: "text", id: "m1", text: "Hello", done: true }]);
    expect(resumed).toEqual(applyAll(emptyRun(S), events));
  });

  it("a resumed stream (Last-Event-ID) continues exactly where it left off", () => {
    const first = applyAll(emptyRun(S), events.slice(0, 3));
    const rest = applyAll(first, events.slice(3));
    expect(rest.blocks[0]).toMatchObject({ text: "Hello", done: true });
  });

  it("builds tool cards with streamed arguments and their results", () => {
    const run = applyAll(emptyRun(S), [
      { seq: 1, event: { type: "TOOL_CALL_START", toolCallId: "c1", toolCallName: "lookup" } },
      { seq: 2, event: { type: "TOOL_CALL_ARGS", toolCallId: "c1", delta: '{"q":' } },
      { seq: 3, event: { type: "TOOL_CALL_ARGS", toolCallId: "c1", delta: '"x"}' } },
      { seq: 4, event: { type: "TOOL_CALL_END", toolCallId: "c1" } },
    ]);
    expect(run.blocks).toEqual([{ kind: "tool", id: "c1", name: "lookup", args: '{"q":"x"}', status: "running" }]);
    const done = applyEvent(run, 5, {
      type: "TOOL_CALL_RESULT",
      messageId: "t1",
      toolCallId: "c1",
      content: "unknown tool",
      role: "tool",
      status: "error",
    });
    expect(done.blocks[0]).toMatchObject({ status: "error", result: "unknown tool" });
  });

  it("marks deferred calls as awaiting approval when the run ends", () => {
    const run = applyAll(emptyRun(S), [
      { seq: 1, event: { type: "TOOL_CALL_START", toolCallId: "c1", toolCallName: "shell" } },
      {
        seq: 2,
        event: {
          type: "RUN_FINISHED",
          threadId: C,
          runId: S,
          result: { status: "awaiting_tool_results", deferredToolCalls: [{ id: "c1", name: "shell", arguments: {} }] },
        },
      },
    ]);
    expect(run.blocks[0]).toMatchObject({ status: "awaiting_approval" });
    expect(run.deferred).toHaveLength(1);
  });

  it("cancels running tools on interrupt and shows steering and errors", () => {
    const run = applyAll(emptyRun(S), [
      { seq: 1, event: { type: "TOOL_CALL_START", toolCallId: "c1", toolCallName: "slow" } },
      { seq: 2, event: { type: "CUSTOM", name: "steering_received", value: { text: "shorter" } } },
      { seq: 3, event: { type: "RUN_FINISHED", threadId: C, runId: S, result: { status: "interrupted" } } },
    ]);
    expect(run.blocks[0]).toMatchObject({ status: "cancelled" });
    expect(run.blocks[1]).toMatchObject({ kind: "user", text: "shorter" });
    const failed = applyEvent(emptyRun(S), 1, { type: "RUN_ERROR", message: "rate limited", code: "rate_limited" });
    expect(failed).toMatchObject({ status: "failed", error: "rate limited", finished: true });
  });

  it("passes over subagent events, keeping the tool call they belong to", () => {
    const child = { child_conversation_id: "c-child", child_session_id: "s-child" };
    const run = applyAll(emptyRun(S), [
      { seq: 1, event: { type: "TOOL_CALL_START", toolCallId: "c1", toolCallName: "delegate" } },
      { seq: 2, event: { type: "CUSTOM", name: "subagent_started", value: { ...child, preset: "helper", background: false } } },
      { seq: 3, event: { type: "CUSTOM", name: "subagent_completed", value: { ...child, status: "committed", summary: "42" } } },
      { seq: 4, event: { type: "TOOL_CALL_RESULT", messageId: "t1", toolCallId: "c1", content: "42", role: "tool" } },
    ]);
    expect(run.lastSeq).toBe(4);
    expect(run.status).toBe("running");
    expect(run.blocks).toHaveLength(1);
    expect(run.blocks[0]).toMatchObject({ kind: "tool", name: "delegate", result: "42", status: "complete" });
  });

  it("counts recalled memories and ignores other custom events", () => {
    const run = applyAll(emptyRun(S), [
      events[0],
      { seq: 2, event: { type: "CUSTOM", name: "memories_recalled", value: { ids: [S], count: 1 } } },
      { seq: 3, event: { type: "CUSTOM", name: "something_new", value: null } },
      ...events.slice(1).map((e) => ({ ...e, seq: e.seq + 2 })),
    ]);
    expect(run.recalled).toBe(1);
    expect(run.blocks).toEqual([{ kind: "text", id: "m1", text: "Hello", done: true }]);
    expect(run.lastSeq).toBe(8);
  });

  it("collects reasoning separately from text", () => {
    const run = applyAll(emptyRun(S), [
      { seq: 1, event: { type: "REASONING_START", messageId: "r1" } },
      { seq: 2, event: { type: "REASONING_MESSAGE_CONTENT", messageId: "r1", delta: "think" } },
      { seq: 3, event: { type: "REASONING_END", messageId: "r1" } },
      { seq: 4, event: { type: "TEXT_MESSAGE_CONTENT", messageId: "m1", delta: "answer" } },
    ]);
    expect(run.blocks.map((b) => b.kind)).toEqual(["reasoning", "text"]);
    expect(run.blocks[0]).toMatchObject({ text: "think", done: true });
  });
});

describe("blocksFromMessages", () => {
  it("joins tool results to their calls and keeps user images", () => {
    const blocks = blocksFromMessages([
      { role: "user", content: [{ type: "text", text: "hi" }, { type: "image", source: { kind: "base64", media_type: "image/png", data: "AAA" } }] },
      { role: "assistant", content: [{ type: "tool_call", id: "c1", name: "lookup", arguments: { q: 1 } }] },
      { role: "tool", content: [{ type: "tool_result", call_id: "c1", content: "42", status: "success" }] },
      { role: "assistant", content: [{ type: "text", text: "It is 42." }] },
    ]);
    expect(blocks).toEqual([
      { kind: "user", id: "m0-0", text: "hi", images: ["data:image/png;base64,AAA"] },
      { kind: "tool", id: "c1", name: "lookup", args: '{"q":1}', result: "42", status: "complete" },
      { kind: "text", id: "m3-0", text: "It is 42.", done: true },
    ]);
  });
});

describe("toolResults", () => {
  it("joins a call that waited for approval to its result in the resumed turn", () => {
    const first = { messages: [
      { role: "user", content: [{ type: "text", text: "run it" }] },
      { role: "assistant", content: [{ type: "tool_call", id: "c9", name: "shell_run", arguments: { command: "echo 42" } }] },
    ] as Message[] };
    const resumed = { messages: [
      { role: "tool", content: [{ type: "tool_result", call_id: "c9", content: "42", status: "success" }] },
      { role: "assistant", content: [{ type: "text", text: "It said 42." }] },
    ] as Message[] };
    const later = toolResults([first, resumed]);
    expect(blocksFromMessages(first.messages, [], later)[1]).toEqual({ kind: "tool", id: "c9", name: "shell_run", args: '{"command":"echo 42"}', result: "42", status: "complete" });
    // without the later turn it is still open
    expect(blocksFromMessages(first.messages)[1]).toMatchObject({ status: "running" });
    // a denial shows as one
    const denied = toolResults([{ messages: [{ role: "tool", content: [{ type: "tool_result", call_id: "c9", content: "no", status: "denied" }] }] as Message[] }]);
    expect(blocksFromMessages(first.messages, [], denied)[1]).toMatchObject({ status: "denied", result: "no" });
  });
});

describe("parseSse", () => {
  it("parses frames, skips comments and keeps the unfinished rest", () => {
    const { frames, rest } = parseSse(': keep-alive\n\nid: 1\nevent: RUN_STARTED\ndata: {"a":1}\n\nid: 2\ndata: {"b"');
    expect(frames).toEqual([{ id: "1", event: "RUN_STARTED", data: '{"a":1}' }]);
    expect(rest).toBe('id: 2\ndata: {"b"');
  });
});
