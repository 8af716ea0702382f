// Follows a session's SSE stream with fetch (so the bearer header can be
// sent), resuming with Last-Event-ID after a dropped connection.
import { ApiError, failure, headers } from "./client";
import type { AgentEvent } from "./types";

export interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

/** Splits SSE text into frames; returns the frames and the unfinished rest. */
export function parseSse(buffer: string): { frames: SseFrame[]; rest: string } {
  const frames: SseFrame[] = [];
  const normalized = buffer.replace(/\r\n?/g, "\n");
  const parts = normalized.split("\n\n");
  const rest = parts.pop() ?? "";
  for (const part of parts) {
    const frame: SseFrame = { data: "" };
    const data: string[] = [];
    for (const line of part.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") frame.id = value;
      else if (field === "event") frame.event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) {
      frame.data = data.join("\n");
      frames.push(frame);
    }
  }
  return { frames, rest };
}

const TERMINAL = new Set(["RUN_FINISHED", "RUN_ERROR"]);

export interface FollowOptions {
  conversationId: string;
  sessionId: string;
  /** Resume after this seq (0: from the start). */
  after: number;
  onEvent: (seq: number, event: AgentEvent) => void;
  onEnd: () => void;
  onError: (err: ApiError) => void;
  /** Told when the connection dropped and a retry is scheduled. */
  onRetry?: (attempt: number) => void;
}

export function followSession(opts: FollowOptions): { close: () => void } {
  const controller = new AbortController();
  let last = opts.after;
  let closed = false;
  let attempt = 0;

  const run = async () => {
    while (!closed) {
      let ended = false;
      try {
        const url = `/api/conversations/${opts.conversationId}/events?session_id=${opts.sessionId}`;
        const res = await fetch(url, {
          headers: headers({ Accept: "text/event-stream", "Last-Event-ID": String(last) }),
          signal: controller.signal,
        });
        if (!res.ok) {
          const err = await failure(res);
          if (res.status >= 400 && res.status < 500) {
            opts.onError(err);
            return;
          }
          throw err;
        }
        attempt = 0;
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          const { frames, rest } = parseSse(buffer);
          buffer = rest;
          for (const f of frames) {
            const seq = Number(f.id ?? "0");
            let event: AgentEvent;
            try {
              event = JSON.parse(f.data) as AgentEvent;
            } catch {
              continue;
            }
            if (seq > last) last = seq;
            opts.onEvent(seq, event);
            if (TERMINAL.has(event.type)) ended = true;
          }
        }
        if (ended) {
          opts.onEnd();
          return;
        }
        // The server closes only after the terminal event; anything else is
        // a dropped connection (or a finished session with nothing after
        // `last`, which the retry settles by answering at once and empty).
        if (!ended && last > 0) {
          const status = await fetch(`/api/sessions/${opts.sessionId}/status`, { headers: headers(), signal: controller.signal });
          if (status.ok) {
            const s = (await status.json()) as { status: string };
            if (s.status !== "running" && s.status !== "created") {
              opts.onEnd();
              return;
            }
          }
        }
      } catch (e) {
        if (closed || (e instanceof DOMException && e.name === "AbortError")) return;
        if (e instanceof ApiError && e.status === 401) return;
      }
      if (closed) return;
      attempt += 1;
      opts.onRetry?.(attempt);
      await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** (attempt - 1), 8000)));
    }
  };
  void run();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}
