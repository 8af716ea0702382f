// The event-stream reducer: folds a session's AG-UI events (and its stored
// messages) into what the chat view draws. Pure; unit-tested in run.test.ts.
import type { AgentEvent, Message, SessionStatus, ToolCall, ToolResultStatus, UsageByModel } from "../api/types";

export type ToolStatus = "running" | "complete" | "error" | "cancelled" | "denied" | "awaiting_approval";

export type Block =
  | { kind: "text"; id: string; text: string; done: boolean }
  | { kind: "reasoning"; id: string; text: string; done: boolean }
  | { kind: "tool"; id: string; name: string; args: string; result?: string; status: ToolStatus }
  | { kind: "user"; id: string; text: string; images: string[] };

export interface RunView {
  sessionId: string;
  /** The highest event seq applied: an event at or below it is a duplicate. */
  lastSeq: number;
  status: SessionStatus;
  blocks: Block[];
  usage: UsageByModel;
  error?: string;
  deferred: ToolCall[];
  /** Whether the stream delivered the terminal event. */
  finished: boolean;
  /** How many of the user's memories were added to the run's system prompt. */
  recalled: number;
}

export function emptyRun(sessionId: string): RunView {
  return { sessionId, lastSeq: 0, status: "running", blocks: [], usage: {}, deferred: [], finished: false, recalled: 0 };
}

function toolStatus(s: ToolResultStatus | undefined): ToolStatus {
  switch (s) {
    case "error":
      return "error";
    case "cancel":
      return "cancelled";
    case "denied":
      return "denied";
    default:
      return "complete";
  }
}

function update(blocks: Block[], id: string, kind: Block["kind"], f: (b: Block) => Block): Block[] {
  const i = blocks.findIndex((b) => b.id === id && b.kind === kind);
  if (i < 0) return blocks;
  const next = blocks.slice();
  next[i] = f(blocks[i]);
  return next;
}

/**
 * Applies one event. Events are numbered per session from 1; an event whose
 * seq is not above `lastSeq` was seen already (a replay after a reconnect,
 * or the same event from two sources) and leaves the view unchanged.
 */
export function applyEvent(run: RunView, seq: number, event: AgentEvent): RunView {
  if (seq <= run.lastSeq) return run;
  const next: RunView = { ...run, lastSeq: seq };
  const blocks = run.blocks;
  switch (event.type) {
    case "RUN_STARTED":
      return { ...next, status: "running" };
    case "TEXT_MESSAGE_START":
      if (blocks.some((b) => b.kind === "text" && b.id === event.messageId)) return next;
      return { ...next, blocks: [...blocks, { kind: "text", id: event.messageId, text: "", done: false }] };
    case "TEXT_MESSAGE_CONTENT": {
      const exists = blocks.some((b) => b.kind === "text" && b.id === event.messageId);
      const base: Block[] = exists ? blocks : [...blocks, { kind: "text", id: event.messageId, text: "", done: false }];
      return {
        ...next,
        blocks: update(base, event.messageId, "text", (b) => (b.kind === "text" ? { ...b, text: b.text + event.delta } : b)),
      };
    }
    case "TEXT_MESSAGE_END":
      return { ...next, blocks: update(blocks, event.messageId, "text", (b) => ({ ...b, done: true }) as Block) };
    case "REASONING_START":
    case "REASONING_MESSAGE_START":
      if (blocks.some((b) => b.kind === "reasoning" && b.id === event.messageId)) return next;
      return { ...next, blocks: [...blocks, { kind: "reasoning", id: event.messageId, text: "", done: false }] };
    case "REASONING_MESSAGE_CONTENT": {
      const exists = blocks.some((b) => b.kind === "reasoning" && b.id === event.messageId);
      const base: Block[] = exists
        ? blocks
        : [...blocks, { kind: "reasoning", id: event.messageId, text: "", done: false }];
      return {
        ...next,
        blocks: update(base, event.messageId, "reasoning", (b) =>
          b.kind === "reasoning" ? { ...b, text: b.text + event.delta } : b,
        ),
      };
    }
    case "REASONING_MESSAGE_END":
    case "REASONING_END":
      return { ...next, blocks: update(blocks, event.messageId, "reasoning", (b) => ({ ...b, done: true }) as Block) };
    case "TOOL_CALL_START":
      if (blocks.some((b) => b.kind === "tool" && b.id === event.toolCallId)) return next;
      return {
        ...next,
        blocks: [...blocks, { kind: "tool", id: event.toolCallId, name: event.toolCallName, args: "", status: "running" }],
      };
    case "TOOL_CALL_ARGS":
      return {
        ...next,
        blocks: update(blocks, event.toolCallId, "tool", (b) => (b.kind === "tool" ? { ...b, args: b.args + event.delta } : b)),
      };
    case "TOOL_CALL_END":
      return next;
    case "TOOL_CALL_RESULT":
      return {
        ...next,
        blocks: update(blocks, event.toolCallId, "tool", (b) =>
          b.kind === "tool" ? { ...b, result: event.content, status: toolStatus(event.status) } : b,
        ),
      };
    case "RUN_FINISHED": {
      const deferred = event.result.deferredToolCalls ?? [];
      const ids = new Set(deferred.map((c) => c.id));
      const status = event.result.status;
      return {
        ...next,
        status,
        finished: true,
        usage: event.result.usage ?? run.usage,
        deferred,
        blocks: blocks.map((b) => {
          if (b.kind === "tool" && ids.has(b.id)) return { ...b, status: "awaiting_approval" };
          if (b.kind === "tool" && b.status === "running" && status === "interrupted") return { ...b, status: "cancelled" };
          if ((b.kind === "text" || b.kind === "reasoning") && !b.done) return { ...b, done: true };
          return b;
        }),
      };
    }
    case "RUN_ERROR":
      return { ...next, status: "failed", finished: true, error: event.message };
    case "CUSTOM":
      if (event.name === "usage_snapshot" && event.value && typeof event.value === "object") {
        return { ...next, usage: event.value as UsageByModel };
      }
      if (event.name === "memories_recalled") {
        const count = (event.value as { count?: unknown } | null)?.count;
        return typeof count === "number" ? { ...next, recalled: count } : next;
      }
      if (event.name === "steering_received") {
        const text = (event.value as { text?: unknown } | null)?.text;
        if (typeof text === "string") {
          return { ...next, blocks: [...blocks, { kind: "user", id: `steer-${seq}`, text, images: [] }] };
        }
      }
      return next;
    default:
      return next;
  }
}

/** Applies events in order (a replay from the store, or a test). */
export function applyAll(run: RunView, events: { seq: number; event: AgentEvent }[]): RunView {
  return events.reduce((r, e) => applyEvent(r, e.seq, e.event), run);
}

/** Tool results by call id, from stored messages. */
export type ToolResults = Map<string, { content: string; status: ToolResultStatus | undefined }>;

/**
 * The tool results of several turns by call id: a call that waited for
 * approval is stored in one turn (session) and its result in the next, the
 * one the decision resumed.
 */
export function toolResults(turns: { messages: Message[] }[]): ToolResults {
  const found: ToolResults = new Map();
  for (const t of turns)
    for (const m of t.messages)
      for (const part of m.content) if (part.type === "tool_result") found.set(part.call_id, { content: part.content, status: part.status });
  return found;
}

/**
 * The blocks of stored messages (a finished turn from `/turns`): user text
 * and images, assistant text, reasoning and tool calls, and tool results
 * joined to their calls.
 */
export function blocksFromMessages(messages: Message[], deferred: ToolCall[] = [], later: ToolResults = new Map()): Block[] {
  const blocks: Block[] = [];
  const pending = new Set(deferred.map((c) => c.id));
  messages.forEach((m, mi) => {
    m.content.forEach((part, pi) => {
      const id = `m${mi}-${pi}`;
      switch (part.type) {
        case "text":
          if (m.role === "user") {
            const last = blocks[blocks.length - 1];
            if (last && last.kind === "user" && last.id.startsWith(`m${mi}-`)) last.text += part.text;
            else blocks.push({ kind: "user", id, text: part.text, images: [] });
          } else if (m.role === "assistant") blocks.push({ kind: "text", id, text: part.text, done: true });
          break;
        case "image": {
          const src = part.source.kind === "url" ? part.source.url : `data:${part.source.media_type};base64,${part.source.data}`;
          const last = blocks[blocks.length - 1];
          if (m.role === "user" && last && last.kind === "user" && last.id.startsWith(`m${mi}-`)) last.images.push(src);
          else if (m.role === "user") blocks.push({ kind: "user", id, text: "", images: [src] });
          break;
        }
        case "reasoning":
          blocks.push({ kind: "reasoning", id, text: part.text, done: true });
          break;
        case "tool_call":
          blocks.push({
            kind: "tool",
            id: part.id,
            name: part.name,
            args: typeof part.arguments === "string" ? part.arguments : JSON.stringify(part.arguments),
            status: pending.has(part.id) ? "awaiting_approval" : "running",
          });
          {
            // a call that waited for approval has its result in the turn that resumed it
            const r = later.get(part.id);
            const b = blocks[blocks.length - 1];
            if (r && b.kind === "tool") blocks[blocks.length - 1] = { ...b, result: r.content, status: toolStatus(r.status) };
          }
          break;
        case "tool_result": {
          const i = blocks.findIndex((b) => b.kind === "tool" && b.id === part.call_id);
          if (i >= 0) {
            const b = blocks[i];
            if (b.kind === "tool") blocks[i] = { ...b, result: part.content, status: toolStatus(part.status) };
          }
          break;
        }
        default:
          break;
      }
    });
  });
  return blocks;
}

/** Total tokens of a usage-by-model map. */
export function totals(usage: UsageByModel | undefined): { input: number; output: number } {
  let input = 0;
  let output = 0;
  for (const u of Object.values(usage ?? {})) {
    input += u?.input_tokens ?? 0;
    output += u?.output_tokens ?? 0;
  }
  return { input, output };
}

export function isLive(run: RunView | null): boolean {
  return !!run && !run.finished && (run.status === "running" || run.status === "created");
}
