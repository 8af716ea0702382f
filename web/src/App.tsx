import { useCallback, useEffect, useState } from "react";
import { api, auth } from "./api/client";
import type { PresetList, PresetView, UserView, WorkspaceList, WorkspaceView } from "./api/types";
import { Chat } from "./components/Chat";
import { Login, SetPassword } from "./components/Login";
import { Settings } from "./components/Settings";
import { Sidebar } from "./components/Sidebar";
import { ErrorText, Icon, secondary } from "./components/ui";
import { useRoute } from "./router";

const WORKSPACE_KEY = "netherbrain.workspace";

export function App() {
  const route = useRoute();
  const [user, setUser] = useState<UserView | null>(null);
  const [checking, setChecking] = useState(() => !!auth.token());
  const [expired, setExpired] = useState(false);
  const [askPassword, setAskPassword] = useState(false);
  // the password just used to sign in, to replace a temporary one (memory only)
  const [loginPassword, setLoginPassword] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [workspaces, setWorkspaces] = useState<WorkspaceView[]>([]);
  const [workspaceId, setWorkspaceId] = useState<string | null>(() => localStorage.getItem(WORKSPACE_KEY));
  const [presets, setPresets] = useState<PresetView[]>([]);
  const [version, setVersion] = useState(0);
  const [sidebarOpen, setSidebarOpen] = useState(false);

  useEffect(
    () =>
      auth.onUnauthorized(() => {
        setUser((u) => {
          if (u) setExpired(true);
          return null;
        });
      }),
    [],
  );

  useEffect(() => {
    if (!auth.token()) return;
    api
      .get<UserView>("/api/auth/me")
      .then(setUser, setError)
      .finally(() => setChecking(false));
  }, []);

  const loadCatalog = useCallback(async () => {
    try {
      const [ws, ps] = await Promise.all([
        api.get<WorkspaceList>("/api/workspaces/list"),
        api.get<PresetList>("/api/presets/list"),
      ]);
      setWorkspaces(ws.items);
      setPresets(ps.items);
      setWorkspaceId((cur) => {
        const keep = ws.items.find((w) => w.id === cur) ?? ws.items.find((w) => w.name === "default") ?? ws.items[0];
        return keep?.id ?? null;
      });
    } catch (e) {
      setError(e);
    }
  }, []);

  useEffect(() => {
    // a temporary password is replaced before anything else is loaded
    if (user && !user.must_change_password) void loadCatalog();
  }, [user, loadCatalog]);

  useEffect(() => {
    if (workspaceId) localStorage.setItem(WORKSPACE_KEY, workspaceId);
  }, [workspaceId]);

  const changed = useCallback(() => setVersion((v) => v + 1), []);

  if (checking) return <p className="p-4" role="status">Loading…</p>;
  if (!user)
    return (
      <Login
        expired={expired}
        onLoggedIn={(u, password) => {
          setError(null);
          setLoginPassword(password ?? null);
          setUser(u);
          setAskPassword(!u.has_password && sessionStorage.getItem("netherbrain.skip-password") !== "1");
        }}
      />
    );
  const signOut = () => {
    void api.post("/api/auth/logout").catch(() => undefined);
    auth.clear();
    setLoginPassword(null);
    setUser(null);
  };
  if (user.must_change_password)
    return (
      <SetPassword
        user={user}
        current={loginPassword}
        onSignOut={signOut}
        onDone={(u) => {
          setLoginPassword(null);
          setAskPassword(false);
          setUser(u);
        }}
      />
    );
  if (askPassword)
    return (
      <SetPassword
        user={user}
        onSignOut={signOut}
        onDone={(u) => {
          sessionStorage.setItem("netherbrain.skip-password", "1");
          setAskPassword(false);
          setUser(u);
        }}
      />
    );

  const conversationId = route.page === "chat" ? route.conversationId : null;
  return (
    <div className="flex h-full">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:p-2 focus:text-zinc-900">Skip to content</a>
      <aside
        className={`${sidebarOpen ? "fixed inset-0 z-40 flex" : "hidden"} w-full flex-col bg-zinc-50 dark:bg-zinc-950 md:static md:flex md:w-72 md:border-r md:border-zinc-200 md:dark:border-zinc-700`}
      >
        <Sidebar
          user={user}
          workspaces={workspaces}
          workspaceId={workspaceId}
          onWorkspace={setWorkspaceId}
          currentId={conversationId}
          version={version}
          onClose={() => setSidebarOpen(false)}
          onChanged={changed}
        />
      </aside>
      <main id="main" className="flex min-w-0 flex-1 flex-col">
        <div className="flex items-center gap-2 border-b border-zinc-200 px-2 py-1 md:hidden dark:border-zinc-700">
          <button type="button" className={secondary} aria-label="Open sidebar" aria-expanded={sidebarOpen} onClick={() => setSidebarOpen(true)}><Icon name="menu" /></button>
          <span className="font-semibold">Netherbrain</span>
        </div>
        {error ? <div className="p-3"><ErrorText error={error} /></div> : null}
        <div className="min-h-0 flex-1">
          {route.page === "settings" ? (
            <Settings tab={route.tab} user={user} onCatalogChanged={() => void loadCatalog()} />
          ) : (
            <Chat conversationId={conversationId} workspaceId={workspaceId} presets={presets} version={version} onChanged={changed} />
          )}
        </div>
      </main>
    </div>
  );
}
