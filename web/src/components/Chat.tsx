import { useCallback, useEffect, useRef, useState } from "react";
import { flushSync } from "react-dom";
import { api, ApiError, auth } from "../api/client";
import { followSession } from "../api/stream";
import type {
  ContentPart,
  ConversationDetail,
  ConversationView,
  ForkResponse,
  Message,
  PresetView,
  RunStarted,
  ToolDecision,
  Turn,
  TurnList,
} from "../api/types";
import { navigate } from "../router";
import { applyEvent, blocksFromMessages, emptyRun, isLive, toolResults, totals, type Block, type RunView } from "../state/run";
import { Markdown } from "./Markdown";
import { ErrorText, Icon, input, primary, secondary, danger } from "./ui";

/** Attachments must fit the server's request body limit (1 MiB by default) once base64-encoded. */
export const MAX_ATTACHMENT_BYTES = 700 * 1024;
const MAX_ATTACHMENTS = 4;
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];

interface Attachment {
  name: string;
  mediaType: string;
  data: string; // base64
  size: number;
}

const draftKey = (id: string | null) => `netherbrain.draft.${id ?? "new"}`;

function ToolCard({ block, actions }: { block: Extract<Block, { kind: "tool" }>; actions?: React.ReactNode }) {
  const labels: Record<string, string> = {
    running: "running",
    complete: "complete",
    error: "error",
    cancelled: "cancelled",
    denied: "denied",
    awaiting_approval: "awaiting approval",
  };
  const colors: Record<string, string> = {
    running: "bg-blue-100 text-blue-900 dark:bg-blue-900 dark:text-blue-100",
    complete: "bg-green-100 text-green-900 dark:bg-green-900 dark:text-green-100",
    error: "bg-red-100 text-red-900 dark:bg-red-900 dark:text-red-100",
    cancelled: "bg-zinc-200 text-zinc-800 dark:bg-zinc-700 dark:text-zinc-100",
    denied: "bg-zinc-200 text-zinc-800 dark:bg-zinc-700 dark:text-zinc-100",
    awaiting_approval: "bg-amber-100 text-amber-900 dark:bg-amber-900 dark:text-amber-100",
  };
  let args = block.args;
  try {
    args = JSON.stringify(JSON.parse(block.args), null, 2);
  } catch {
    // partial or raw text: shown as it is
  }
  return (
    <div className="my-2 rounded-lg border border-zinc-300 dark:border-zinc-600" data-testid="tool-card">
      <details open={block.status === "awaiting_approval"}>
        <summary className="flex cursor-pointer items-center gap-2 px-3 py-2 text-sm">
          <Icon name="tool" />
          <span className="font-mono">{block.name}</span>
          <span className={`ml-auto rounded px-2 py-0.5 text-xs ${colors[block.status]}`}>{labels[block.status]}</span>
        </summary>
        <div className="space-y-2 border-t border-zinc-200 px-3 py-2 text-xs dark:border-zinc-700">
          <div>
            <div className="font-medium">Arguments</div>
            <pre className="overflow-x-auto whitespace-pre-wrap break-all">{args || "—"}</pre>
          </div>
          {block.result !== undefined && (
            <div>
              <div className="font-medium">Result</div>
              <pre className="max-h-64 overflow-auto whitespace-pre-wrap break-all">{block.result}</pre>
            </div>
          )}
        </div>
      </details>
      {actions}
    </div>
  );
}

function Blocks({ blocks, approval }: { blocks: Block[]; approval?: (id: string) => React.ReactNode }) {
  return (
    <>
      {blocks.map((b) => {
        switch (b.kind) {
          case "user":
            return (
              <div key={b.id} className="my-3 flex justify-end">
                <div className="max-w-[85%] rounded-2xl bg-indigo-100 px-4 py-2 text-zinc-900 dark:bg-indigo-950 dark:text-zinc-100" data-testid="user-message">
                  <h3 className="sr-only">You said</h3>
                  {b.images.map((src, i) => (
                    <img key={i} src={src} alt={`Attachment ${i + 1}`} className="mb-2 max-h-48 rounded" />
                  ))}
                  <p className="whitespace-pre-wrap">{b.text}</p>
                </div>
              </div>
            );
          case "text":
            return (
              <div key={b.id} className="my-2" data-testid="assistant-message">
                <h3 className="sr-only">Assistant</h3>
                <Markdown text={b.text} />
              </div>
            );
          case "reasoning":
            return (
              <details key={b.id} className="my-2 text-sm text-zinc-700 dark:text-zinc-300">
                <summary className="cursor-pointer">{b.done ? "Reasoning" : "Reasoning…"}</summary>
                <p className="whitespace-pre-wrap border-l-2 border-zinc-300 pl-3 dark:border-zinc-600">{b.text}</p>
              </details>
            );
          case "tool":
            return <ToolCard key={b.id} block={b} actions={b.status === "awaiting_approval" ? approval?.(b.id) : undefined} />;
          default:
            return null;
        }
      })}
    </>
  );
}

function UsageLine({ usage }: { usage: RunView["usage"] }) {
  const t = totals(usage);
  if (!t.input && !t.output) return null;
  return (
    <p className="mt-1 text-xs text-zinc-600 dark:text-zinc-400" data-testid="usage">
      {t.input.toLocaleString()} tokens in · {t.output.toLocaleString()} out
    </p>
  );
}

function encode(file: File): Promise<Attachment> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      resolve({ name: file.name, mediaType: file.type, data: url.slice(url.indexOf(",") + 1), size: file.size });
    };
    reader.onerror = () => reject(new Error(`Could not read ${file.name}.`));
    reader.readAsDataURL(file);
  });
}

export function Chat({
  conversationId,
  workspaceId,
  presets,
  version,
  onChanged,
}: {
  conversationId: string | null;
  workspaceId: string | null;
  presets: PresetView[];
  /** Bumped when a conversation changed elsewhere (renamed in the sidebar, a run ended). */
  version: number;
  onChanged: () => void;
}) {
  const [conversation, setConversation] = useState<ConversationView | null>(null);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [inherited, setInherited] = useState<{ from: ConversationView; turns: Turn[] } | null>(null);
  const [run, setRun] = useState<RunView | null>(null);
  const [pendingInput, setPendingInput] = useState<Block[]>([]);
  const [draft, setDraft] = useState(() => sessionStorage.getItem(draftKey(conversationId)) ?? "");
  const [attachments, setAttachments] = useState<Attachment[]>([]);
  const [presetId, setPresetId] = useState<string>("");
  const [error, setError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string>("");
  const [loading, setLoading] = useState(false);
  const follow = useRef<{ close: () => void } | null>(null);
  const bottom = useRef<HTMLDivElement>(null);
  const textarea = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const live = isLive(run);

  useEffect(() => {
    sessionStorage.setItem(draftKey(conversationId), draft);
  }, [draft, conversationId]);

  const loadTurns = useCallback(async (id: string): Promise<Turn[]> => {
    const all: Turn[] = [];
    let cursor: string | null | undefined = undefined;
    for (let i = 0; i < 20; i++) {
      const q: string = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
      const page: TurnList = await api.get<TurnList>(`/api/conversations/${id}/turns${q}`);
      all.push(...page.items);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    return all;
  }, []);

  const attach = useCallback(
    (convId: string, sessionId: string, after = 0) => {
      follow.current?.close();
      setRun((r) => (r && r.sessionId === sessionId ? r : emptyRun(sessionId)));
      follow.current = followSession({
        conversationId: convId,
        sessionId,
        after,
        onEvent: (seq, event) => {
          setNotice("");
          setRun((r) => applyEvent(r && r.sessionId === sessionId ? r : emptyRun(sessionId), seq, event));
        },
        onRetry: () => setNotice("Connection lost; reconnecting…"),
        onEnd: async () => {
          setNotice("");
          try {
            const t = await loadTurns(convId);
            setTurns(t);
            setPendingInput([]);
            // keep the live view only while it waits for approval
            setRun((r) => (r && r.deferred.length > 0 ? r : null));
          } catch (e) {
            setError(e);
          }
          onChanged();
        },
        onError: (e) => setError(e),
      });
    },
    [loadTurns, onChanged],
  );

  // load the conversation, its history, and reattach to a running session
  useEffect(() => {
    follow.current?.close();
    setRun(null);
    setTurns([]);
    setInherited(null);
    setPendingInput([]);
    setError(null);
    setConversation(null);
    setDraft(sessionStorage.getItem(draftKey(conversationId)) ?? "");
    if (!conversationId) return;
    let cancelled = false;
    setLoading(true);
    (async () => {
      try {
        const detail = await api.get<ConversationDetail>(`/api/conversations/${conversationId}`);
        const history = await loadTurns(conversationId);
        if (cancelled) return;
        setConversation(detail);
        setPresetId(detail.default_preset ?? "");
        setTurns(history);
        if (detail.forked_from) {
          // a fork's history is its origin's, up to the forked session
          const origin = detail.forked_from;
          Promise.all([
            api.get<ConversationView>(`/api/conversations/${origin.conversation_id}`),
            loadTurns(origin.conversation_id),
          ]).then(
            ([from, all]) => {
              const upTo = all.findIndex((t) => t.session.id === origin.session_id);
              if (!cancelled) setInherited({ from, turns: upTo >= 0 ? all.slice(0, upTo + 1) : [] });
            },
            () => {
              // the origin is gone or not ours to read: show the fork alone
            },
          );
        }
        const active = detail.active_session?.id;
        const last = history[history.length - 1];
        if (active) {
          attach(conversationId, active, 0);
        } else if (last && last.session.status === "awaiting_tool_results" && last.session.deferred_tool_calls.length) {
          setRun({
            ...emptyRun(last.session.id),
            status: "awaiting_tool_results",
            finished: true,
            deferred: last.session.deferred_tool_calls,
          });
        }
      } catch (e) {
        if (!cancelled) setError(e);
      } finally {
        if (!cancelled) setLoading(false);
      }
    })();
    return () => {
      cancelled = true;
      follow.current?.close();
    };
  }, [conversationId, loadTurns, attach]);

  // a rename elsewhere shows in the header
  useEffect(() => {
    if (!conversationId || version === 0) return;
    let cancelled = false;
    api.get<ConversationDetail>(`/api/conversations/${conversationId}`).then(
      (d) => {
        if (!cancelled) setConversation((c) => (c && c.id === d.id ? d : c));
      },
      () => {
        // the next load reports errors
      },
    );
    return () => {
      cancelled = true;
    };
  }, [conversationId, version]);

  // runs started elsewhere (another tab, the CLI, a gateway) appear live:
  // the conversation's follow feed over the WebSocket announces each run
  const runRef = useRef<RunView | null>(null);
  runRef.current = run;
  useEffect(() => {
    const token = auth.token();
    if (!conversationId || !token) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/ws?token=${encodeURIComponent(token)}`);
    ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", conversation_id: conversationId }));
    ws.onmessage = (m) => {
      try {
        const frame = JSON.parse(String(m.data)) as { type: string; session_id?: string; event?: { type: string } };
        const session = frame.session_id;
        if (frame.type !== "event" || frame.event?.type !== "RUN_STARTED" || !session) return;
        if (runRef.current?.sessionId === session) return;
        attach(conversationId, session, 0);
      } catch {
        // ignore malformed frames
      }
    };
    return () => ws.close();
  }, [conversationId, attach]);

  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [turns, run?.blocks, pendingInput]);

  const effectivePreset = presetId || conversation?.default_preset || presets[0]?.id || "";

  const send = async () => {
    const text = draft.trim();
    if (!text && attachments.length === 0) return;
    setError(null);
    try {
      if (live && conversationId) {
        await api.post(`/api/conversations/${conversationId}/steer`, { text });
        setDraft("");
        return;
      }
      if (!effectivePreset) throw new Error("No preset exists yet. An admin can add one under Settings → Presets.");
      let convId = conversationId;
      if (!convId) {
        const created = await api.post<ConversationView>("/api/conversations/create", {
          workspace_id: workspaceId,
          default_preset: effectivePreset,
          title: text.slice(0, 60) || "Image",
        });
        convId = created.id;
      }
      const content: ContentPart[] = [];
      if (text) content.push({ type: "text", text });
      for (const a of attachments) content.push({ type: "image", source: { kind: "base64", media_type: a.mediaType, data: a.data } });
      const message: Message = { role: "user", content };
      const started = await api.post<RunStarted>("/api/conversations/run", {
        conversation_id: convId,
        input: attachments.length ? [message] : text,
        preset_id: effectivePreset,
        stream: false,
      });
      // committed before the route changes: the route's update is urgent
      // (a popstate) and would otherwise render the new conversation with
      // the old draft, which its draft effect then keeps
      flushSync(() => setDraft(""));
      sessionStorage.removeItem(draftKey(conversationId));
      setAttachments([]);
      setPendingInput(blocksFromMessages([message]));
      if (!conversationId) {
        onChanged();
        navigate(`/c/${convId}`);
        return;
      }
      attach(convId, started.session_id, 0);
      onChanged();
    } catch (e) {
      if (e instanceof ApiError && e.code === "conversation_busy") setError(new Error("A run is still going in this conversation. Wait for it or stop it."));
      else setError(e);
    }
  };

  const stop = async () => {
    if (!conversationId) return;
    try {
      await api.post(`/api/conversations/${conversationId}/interrupt`, {});
    } catch (e) {
      if (!(e instanceof ApiError && e.code === "not_running")) setError(e);
    }
  };

  const decide = async (decisions: ToolDecision[]) => {
    if (!run || !conversationId) return;
    try {
      const started = await api.post<RunStarted>(`/api/sessions/${run.sessionId}/resume`, { decisions, stream: false });
      setTurns(await loadTurns(conversationId));
      setRun(null);
      attach(conversationId, started.session_id, 0);
    } catch (e) {
      setError(e);
    }
  };

  const fork = async (sessionId: string) => {
    if (!conversationId) return;
    try {
      const res = await api.post<ForkResponse>(`/api/conversations/${conversationId}/fork`, { session_id: sessionId });
      onChanged();
      navigate(`/c/${res.conversation.id}`);
    } catch (e) {
      setError(e);
    }
  };

  const changePreset = async (id: string) => {
    setPresetId(id);
    if (!conversationId) return;
    try {
      const c = await api.post<ConversationView>(`/api/conversations/${conversationId}/update`, { default_preset: id || null });
      setConversation(c);
    } catch (e) {
      setError(e);
    }
  };

  const addFiles = async (files: FileList | File[]) => {
    const list = Array.from(files).filter((f) => f.type.startsWith("image/"));
    try {
      const next = [...attachments];
      for (const f of list) {
        if (!IMAGE_TYPES.includes(f.type)) throw new Error(`${f.name}: only PNG, JPEG, GIF and WebP images can be attached.`);
        if (next.length >= MAX_ATTACHMENTS) throw new Error(`At most ${MAX_ATTACHMENTS} images per message.`);
        const total = next.reduce((s, a) => s + a.size, 0) + f.size;
        if (total > MAX_ATTACHMENT_BYTES) throw new Error(`Images may add up to ${Math.round(MAX_ATTACHMENT_BYTES / 1024)} KB per message; ${f.name} is too large.`);
        next.push(await encode(f));
      }
      setAttachments(next);
    } catch (e) {
      setError(e);
    }
  };

  const onKeyDown = (e: React.KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  };

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape" && live) {
        e.preventDefault();
        void stop();
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  });

  const liveSessionId = run?.sessionId;
  const shownTurns = turns.filter((t) => t.session.id !== liveSessionId || (run && run.finished && run.deferred.length === 0));
  const liveTurnStored = turns.find((t) => t.session.id === liveSessionId);
  const results = toolResults(turns);
  const inheritedResults = toolResults(inherited?.turns ?? []);
  const approval = (id: string) => (
    <div className="flex gap-2 border-t border-zinc-200 px-3 py-2 dark:border-zinc-700">
      <button type="button" className={primary} onClick={() => void decide([{ decision: "approve", call_id: id }])}>Approve</button>
      <button type="button" className={danger} onClick={() => void decide([{ decision: "deny", call_id: id, reason: "denied in the web UI" }])}>Deny</button>
    </div>
  );

  return (
    <div className="flex h-full min-h-0 flex-col">
      <header className="flex flex-wrap items-center gap-2 border-b border-zinc-200 px-4 py-2 dark:border-zinc-700">
        <h1 className="min-w-0 flex-1 truncate text-base font-semibold">{conversation ? conversation.title || "New chat" : "New chat"}</h1>
        <label className="flex items-center gap-1 text-sm">
          <span>Preset</span>
          <select className={`${input} w-auto py-1`} value={effectivePreset} onChange={(e) => void changePreset(e.target.value)}>
            {presets.length === 0 && <option value="">none</option>}
            {presets.map((p) => (
              <option key={p.id} value={p.id}>{p.name}</option>
            ))}
          </select>
        </label>
      </header>
      <section aria-label="Messages" aria-live="polite" aria-busy={live} className="flex-1 overflow-y-auto px-4 py-2">
        <div className="mx-auto max-w-3xl">
          {loading && <p className="text-sm">Loading…</p>}
          {!conversationId && turns.length === 0 && (
            <div className="mt-16 text-center">
              <h2 className="text-2xl font-semibold">What can I help with?</h2>
              {presets.length === 0 && <p className="mt-2 text-sm">No preset is set up yet. <a className="underline" href="/settings/providers" onClick={(e) => { e.preventDefault(); navigate("/settings/providers"); }}>Add a provider</a> (the first one gets a <code>default</code> preset) or <a className="underline" href="/settings/presets" onClick={(e) => { e.preventDefault(); navigate("/settings/presets"); }}>a preset</a> to start chatting.</p>}
            </div>
          )}
          {inherited && (
            <section aria-label="History from the original conversation" className="opacity-80">
              {inherited.turns.map((t) => (
                <Blocks key={t.session.id} blocks={blocksFromMessages(t.messages, [], inheritedResults)} />
              ))}
              <p className="my-3 border-y border-dashed border-zinc-300 py-1 text-center text-xs dark:border-zinc-600">
                Forked from{" "}
                <a className="underline" href={`/c/${inherited.from.id}`} onClick={(e) => { e.preventDefault(); navigate(`/c/${inherited.from.id}`); }}>
                  {inherited.from.title || "a conversation"}
                </a>
              </p>
            </section>
          )}
          {shownTurns.map((t) => (
            <article key={t.session.id} className="group" aria-label="Turn">
              <Blocks blocks={blocksFromMessages(t.messages, [], results)} />
              {t.session.error && <p role="alert" className="text-sm text-red-700 dark:text-red-300">The run failed: {t.session.error}</p>}
              {t.session.status === "interrupted" && <p className="text-xs text-zinc-600 dark:text-zinc-400">Stopped.</p>}
              <div className="flex items-center gap-3">
                <UsageLine usage={t.session.usage} />
                {!live && t.session.status !== "running" && t.session.status !== "created" && (
                  <button type="button" className="mt-1 text-xs underline opacity-80 hover:opacity-100" onClick={() => void fork(t.session.id)}>Fork from this turn</button>
                )}
              </div>
            </article>
          ))}
          {run && (
            <article aria-label="Current turn" data-testid="live-turn">
              {liveTurnStored ? <Blocks blocks={blocksFromMessages(liveTurnStored.session.input)} /> : <Blocks blocks={pendingInput} />}
              <Blocks blocks={run.blocks} approval={approval} />
              {run.deferred.length > 0 && run.blocks.length === 0 && (
                <Blocks blocks={run.deferred.map((c) => ({ kind: "tool", id: c.id, name: c.name, args: JSON.stringify(c.arguments), status: "awaiting_approval" }) as Block)} approval={approval} />
              )}
              {run.error && <p role="alert" className="text-sm text-red-700 dark:text-red-300">The run failed: {run.error}</p>}
              {run.recalled > 0 && (
                <p className="text-xs text-zinc-500 dark:text-zinc-400">
                  Recalled {run.recalled} {run.recalled === 1 ? "memory" : "memories"}
                </p>
              )}
              {live && <p className="text-sm text-zinc-600 dark:text-zinc-400" role="status">Working…</p>}
              <UsageLine usage={run.usage} />
            </article>
          )}
          <div ref={bottom} />
        </div>
      </section>
      <form
        className="border-t border-zinc-200 p-3 dark:border-zinc-700"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
        onDragOver={(e) => e.preventDefault()}
        onDrop={(e) => {
          e.preventDefault();
          void addFiles(e.dataTransfer.files);
        }}
      >
        <div className="mx-auto max-w-3xl space-y-2">
          {notice && <p role="status" className="text-sm text-amber-800 dark:text-amber-300">{notice}</p>}
          <ErrorText error={error} />
          {attachments.length > 0 && (
            <ul className="flex flex-wrap gap-2" aria-label="Attachments">
              {attachments.map((a, i) => (
                <li key={i} className="flex items-center gap-1 rounded border border-zinc-300 px-2 py-1 text-xs dark:border-zinc-600">
                  {a.name} ({Math.ceil(a.size / 1024)} KB)
                  <button type="button" aria-label={`Remove ${a.name}`} onClick={() => setAttachments(attachments.filter((_, j) => j !== i))}><Icon name="close" className="h-3 w-3" /></button>
                </li>
              ))}
            </ul>
          )}
          <div className="flex items-end gap-2">
            <button type="button" className={secondary} aria-label="Attach images" onClick={() => fileInput.current?.click()}><Icon name="clip" className="h-5 w-5" /></button>
            <input ref={fileInput} type="file" accept={IMAGE_TYPES.join(",")} multiple hidden onChange={(e) => { if (e.target.files) void addFiles(e.target.files); e.target.value = ""; }} />
            <label htmlFor="composer" className="sr-only">{live ? "Steer the running reply" : "Message"}</label>
            <textarea
              id="composer"
              ref={textarea}
              rows={2}
              className={`${input} max-h-48 resize-y`}
              placeholder={live ? "Steer the reply… (Esc stops)" : "Message Netherbrain (Enter sends, Shift+Enter: new line)"}
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
              onKeyDown={onKeyDown}
              onPaste={(e) => {
                const files = Array.from(e.clipboardData.files);
                if (files.length) {
                  e.preventDefault();
                  void addFiles(files);
                }
              }}
            />
            {live && <button type="button" className={danger} onClick={() => void stop()}>Stop</button>}
            <button type="submit" className={primary}>{live ? "Steer" : "Send"}</button>
          </div>
        </div>
      </form>
    </div>
  );
}

