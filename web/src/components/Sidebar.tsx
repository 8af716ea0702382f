import { useCallback, useEffect, useRef, useState } from "react";
import { api, auth, query } from "../api/client";
import type { ConversationList, ConversationView, SearchResults, UserView, WorkspaceView } from "../api/types";
import { navigate } from "../router";
import { ErrorText, Icon, input, secondary } from "./ui";

const PAGE = 30;

export function title(c: ConversationView): string {
  return c.title?.trim() || "New chat";
}

/**
 * Keeps the list live: one WebSocket subscription per listed conversation
 * (the server's follow feed, which reports runs started from any surface),
 * and a refresh when the window regains focus and every 30 s while visible
 * (for conversations created elsewhere, which no existing subscription can
 * announce).
 */
function useLiveList(ids: string[], refresh: () => void) {
  const wsRef = useRef<WebSocket | null>(null);
  const subscribed = useRef(new Set<string>());
  const refreshRef = useRef(refresh);
  refreshRef.current = refresh;
  const idsRef = useRef(ids);
  idsRef.current = ids;
  useEffect(() => {
    const token = auth.token();
    if (!token) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/ws?token=${encodeURIComponent(token)}`);
    wsRef.current = ws;
    subscribed.current = new Set();
    let timer: ReturnType<typeof setTimeout> | undefined;
    ws.onmessage = (m) => {
      try {
        const frame = JSON.parse(String(m.data)) as { type: string; event?: { type: string } };
        const t = frame.event?.type;
        if (frame.type === "started" || t === "RUN_STARTED" || t === "RUN_FINISHED" || t === "RUN_ERROR") {
          clearTimeout(timer);
          timer = setTimeout(() => refreshRef.current(), 300);
        }
      } catch {
        // ignore malformed frames
      }
    };
    ws.onopen = () => sync();
    const onFocus = () => refreshRef.current();
    addEventListener("focus", onFocus);
    // conversations created elsewhere have no subscription to announce them
    const poll = setInterval(() => {
      if (document.visibilityState === "visible") refreshRef.current();
    }, 30_000);
    return () => {
      clearInterval(poll);
      clearTimeout(timer);
      removeEventListener("focus", onFocus);
      ws.close();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  function sync() {
    const ws = wsRef.current;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    // the server lets one socket follow 64 conversations; the poll covers the rest
    for (const id of idsRef.current.slice(0, 60)) {
      if (subscribed.current.has(id)) continue;
      subscribed.current.add(id);
      // "after" 0 would replay; without it only runs from now on stream
      ws.send(JSON.stringify({ type: "subscribe", conversation_id: id }));
    }
  }
  useEffect(() => sync(), [ids.join(",")]); // eslint-disable-line react-hooks/exhaustive-deps
}

export function Sidebar({
  user,
  workspaces,
  workspaceId,
  onWorkspace,
  currentId,
  version,
  onClose,
  onChanged,
}: {
  user: UserView;
  workspaces: WorkspaceView[];
  workspaceId: string | null;
  onWorkspace: (id: string) => void;
  currentId: string | null;
  version: number;
  onClose: () => void;
  /** Told after a rename or archive (the open chat shows the new title). */
  onChanged: () => void;
}) {
  const [items, setItems] = useState<ConversationView[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [search, setSearch] = useState("");
  const [results, setResults] = useState<ConversationView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [renaming, setRenaming] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const page = await api.get<ConversationList>(
        "/api/conversations/list" + query({ status: "active", workspace_id: workspaceId, limit: PAGE }),
      );
      setItems(page.items);
      setCursor(page.next_cursor ?? null);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [workspaceId]);

  useEffect(() => {
    void load();
  }, [load, version]);

  useLiveList(
    items.map((c) => c.id),
    load,
  );

  const more = async () => {
    if (!cursor) return;
    try {
      const page = await api.get<ConversationList>(
        "/api/conversations/list" + query({ status: "active", workspace_id: workspaceId, limit: PAGE, cursor }),
      );
      setItems((old) => [...old, ...page.items.filter((c) => !old.some((o) => o.id === c.id))]);
      setCursor(page.next_cursor ?? null);
    } catch (e) {
      setError(e);
    }
  };

  useEffect(() => {
    const q = search.trim();
    if (!q) {
      setResults(null);
      return;
    }
    const t = setTimeout(async () => {
      try {
        const r = await api.get<SearchResults>("/api/conversations/search" + query({ q, limit: 30 }));
        setResults(r.items);
      } catch (e) {
        setError(e);
      }
    }, 250);
    return () => clearTimeout(t);
  }, [search]);

  const rename = async (c: ConversationView, value: string) => {
    setRenaming(null);
    const t = value.trim();
    if (!t || t === c.title) return;
    try {
      await api.post(`/api/conversations/${c.id}/update`, { title: t });
      onChanged();
    } catch (e) {
      setError(e);
    }
  };
  const archive = async (c: ConversationView) => {
    try {
      await api.post(`/api/conversations/${c.id}/update`, { status: "archived" });
      if (c.id === currentId) navigate("/");
      onChanged();
    } catch (e) {
      setError(e);
    }
  };

  const shown = results ?? items;
  return (
    <nav aria-label="Conversations" className="flex h-full flex-col gap-3 p-3">
      <div className="flex items-center justify-between">
        <span className="font-semibold">Netherbrain</span>
        <button type="button" className={`${secondary} md:hidden`} onClick={onClose} aria-label="Close sidebar"><Icon name="close" /></button>
      </div>
      <label className="text-xs font-medium">
        Workspace
        <select className={`${input} mt-1`} value={workspaceId ?? ""} onChange={(e) => onWorkspace(e.target.value)}>
          {workspaces.map((w) => (
            <option key={w.id} value={w.id}>{w.name}</option>
          ))}
        </select>
      </label>
      <button type="button" className={secondary} onClick={() => { navigate("/"); onClose(); }}>+ New chat</button>
      <input className={input} type="search" placeholder="Search conversations" aria-label="Search conversations" value={search} onChange={(e) => setSearch(e.target.value)} />
      <ErrorText error={error} />
      <ul className="-mx-1 flex-1 space-y-0.5 overflow-y-auto" aria-label={results ? "Search results" : "Recent conversations"}>
        {shown.length === 0 && <li className="px-2 py-1 text-sm text-zinc-600 dark:text-zinc-400">{results ? "No match." : "No conversations yet."}</li>}
        {shown.map((c) => (
          <li key={c.id} className={`group flex items-center rounded-md ${c.id === currentId ? "bg-zinc-200 dark:bg-zinc-700" : "hover:bg-zinc-100 dark:hover:bg-zinc-800"}`}>
            {renaming === c.id ? (
              <input
                className={`${input} py-1`}
                aria-label="New title"
                autoFocus
                defaultValue={c.title ?? ""}
                onBlur={(e) => void rename(c, e.target.value)}
                onKeyDown={(e) => {
                  if (e.key === "Enter") void rename(c, (e.target as HTMLInputElement).value);
                  if (e.key === "Escape") setRenaming(null);
                }}
              />
            ) : (
              <>
                <a
                  href={`/c/${c.id}`}
                  aria-current={c.id === currentId ? "page" : undefined}
                  className="min-w-0 flex-1 truncate px-2 py-1.5 text-sm focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500"
                  onClick={(e) => {
                    e.preventDefault();
                    navigate(`/c/${c.id}`);
                    onClose();
                  }}
                >
                  {title(c)}
                </a>
                <button type="button" className="px-1 text-xs opacity-70 hover:opacity-100 focus:opacity-100" aria-label={`Rename ${title(c)}`} onClick={() => setRenaming(c.id)}><Icon name="pencil" className="h-3.5 w-3.5" /></button>
                <button type="button" className="px-1 text-xs opacity-70 hover:opacity-100 focus:opacity-100" aria-label={`Archive ${title(c)}`} onClick={() => void archive(c)}><Icon name="archive" className="h-3.5 w-3.5" /></button>
              </>
            )}
          </li>
        ))}
        {!results && cursor && (
          <li><button type="button" className={`${secondary} w-full`} onClick={() => void more()}>Load more</button></li>
        )}
      </ul>
      <div className="flex items-center justify-between border-t border-zinc-200 pt-2 text-sm dark:border-zinc-700">
        <span className="truncate" title={user.username}>{user.display_name || user.username}</span>
        <a href="/settings" className="underline" onClick={(e) => { e.preventDefault(); navigate("/settings"); onClose(); }}>Settings</a>
      </div>
    </nav>
  );
}
