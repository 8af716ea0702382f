import { useCallback, useEffect, useState } from "react";
import { api } from "../api/client";
import type {
  ApiKeyList,
  ApiKeyView,
  CreatedApiKey,
  MemoryList,
  MemoryView,
  ModelList,
  PresetConfig,
  PresetList,
  PresetView,
  ProviderList,
  ProviderTestResult,
  ProviderView,
  UserList,
  UserView,
  WorkspaceList,
  WorkspaceView,
} from "../api/types";
import { navigate } from "../router";
import { danger, ErrorText, Field, input, primary, secondary } from "./ui";

const TABS = [
  { id: "keys", label: "API keys", admin: false },
  { id: "memories", label: "Memories", admin: false },
  { id: "presets", label: "Presets", admin: false },
  { id: "providers", label: "Providers", admin: false },
  { id: "workspaces", label: "Workspaces", admin: false },
  { id: "users", label: "Users", admin: true },
];

export function Settings({ tab, user, onCatalogChanged }: { tab: string; user: UserView; onCatalogChanged: () => void }) {
  const isAdmin = user.role === "admin";
  const tabs = TABS.filter((t) => isAdmin || !t.admin);
  const current = tabs.find((t) => t.id === tab) ?? tabs[0];
  return (
    <div className="h-full overflow-y-auto">
      <div className="mx-auto max-w-3xl p-4">
        <h1 className="mb-3 text-xl font-semibold">Settings</h1>
        <nav aria-label="Settings sections" className="mb-4 flex flex-wrap gap-2">
          {tabs.map((t) => (
            <a
              key={t.id}
              href={`/settings/${t.id}`}
              aria-current={t.id === current.id ? "page" : undefined}
              className={t.id === current.id ? primary : secondary}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/settings/${t.id}`);
              }}
            >
              {t.label}
            </a>
          ))}
        </nav>
        {current.id === "keys" && <Keys />}
        {current.id === "memories" && <Memories />}
        {current.id === "presets" && <Presets isAdmin={isAdmin} onChanged={onCatalogChanged} />}
        {current.id === "providers" && <Providers isAdmin={isAdmin} onChanged={onCatalogChanged} />}
        {current.id === "workspaces" && <Workspaces isAdmin={isAdmin} onChanged={onCatalogChanged} />}
        {current.id === "users" && isAdmin && <Users me={user} />}
      </div>
    </div>
  );
}

function Keys() {
  const [keys, setKeys] = useState<ApiKeyView[]>([]);
  const [name, setName] = useState("");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => api.get<ApiKeyList>("/api/keys/list").then((l) => setKeys(l.items), setError), []);
  useEffect(() => void load(), [load]);
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const created = await api.post<CreatedApiKey>("/api/keys/create", { name });
      setSecret(created.secret);
      setName("");
      void load();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (k: ApiKeyView) => {
    try {
      await api.post(`/api/keys/${k.id}/revoke`, {});
      void load();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="keys-title" className="space-y-4">
      <h2 id="keys-title" className="text-lg font-semibold">API keys</h2>
      <form onSubmit={create} className="flex items-end gap-2">
        <div className="flex-1"><Field label="New key name"><input className={input} value={name} onChange={(e) => setName(e.target.value)} required /></Field></div>
        <button type="submit" className={primary}>Create key</button>
      </form>
      {secret && (
        <div role="status" className="rounded-md border border-green-400 bg-green-50 p-3 text-sm text-green-900 dark:border-green-700 dark:bg-green-950 dark:text-green-100">
          <p className="font-medium">Copy this key now; it is not shown again.</p>
          <code className="block break-all" data-testid="new-key-secret">{secret}</code>
          <button type="button" className={`${secondary} mt-2`} onClick={() => void navigator.clipboard?.writeText(secret)}>Copy</button>
        </div>
      )}
      <ErrorText error={error} />
      <table className="w-full text-left text-sm">
        <thead><tr><th className="py-1">Name</th><th>Prefix</th><th>State</th><th><span className="sr-only">Actions</span></th></tr></thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k.id} className="border-t border-zinc-200 dark:border-zinc-700">
              <td className="py-1">{k.name}</td>
              <td className="font-mono">{k.prefix}</td>
              <td>{k.revoked_at ? "revoked" : k.usable ? "active" : "expired"}</td>
              <td className="text-right">{!k.revoked_at && <button type="button" className={danger} onClick={() => void revoke(k)} aria-label={`Revoke ${k.name}`}>Revoke</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Memories() {
  const [items, setItems] = useState<MemoryView[]>([]);
  const [content, setContent] = useState("");
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => api.get<MemoryList>("/api/memories/list").then((l) => setItems(l.items), setError), []);
  useEffect(() => void load(), [load]);
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api.post("/api/memories/create", { content });
      setContent("");
      void load();
    } catch (err) {
      setError(err);
    }
  };
  const forget = async (m: MemoryView) => {
    try {
      await api.post(`/api/memories/${m.id}/delete`, {});
      void load();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="memories-title" className="space-y-4">
      <h2 id="memories-title" className="text-lg font-semibold">Memories</h2>
      <p className="text-sm text-zinc-600 dark:text-zinc-400">
        What agents with the <code>memory</code> tools remember about you. Only you see them.
      </p>
      <form onSubmit={create} className="flex items-end gap-2">
        <div className="flex-1"><Field label="Remember"><input className={input} value={content} onChange={(e) => setContent(e.target.value)} required /></Field></div>
        <button type="submit" className={primary}>Add</button>
      </form>
      <ErrorText error={error} />
      <ul className="space-y-2 text-sm">
        {items.map((m) => (
          <li key={m.id} className="flex items-start gap-2 border-t border-zinc-200 pt-2 dark:border-zinc-700">
            <span className="flex-1 whitespace-pre-wrap">{m.content}</span>
            <time className="text-xs text-zinc-500" dateTime={m.created_at}>{new Date(m.created_at).toLocaleDateString()}</time>
            <button type="button" className={danger} onClick={() => void forget(m)} aria-label={`Forget ${m.content}`}>Forget</button>
          </li>
        ))}
      </ul>
    </section>
  );
}

const EMPTY_CONFIG = (profile: string, model: string): PresetConfig => ({ profile, model, system_prompt: null, toolsets: [] });

function Presets({ isAdmin, onChanged }: { isAdmin: boolean; onChanged: () => void }) {
  const [presets, setPresets] = useState<PresetView[]>([]);
  const [models, setModels] = useState<ModelList["items"]>([]);
  const [editing, setEditing] = useState<PresetView | "new" | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      const [p, m] = await Promise.all([api.get<PresetList>("/api/presets/list"), api.get<ModelList>("/api/models")]);
      setPresets(p.items);
      setModels(m.items);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => void load(), [load]);
  return (
    <section aria-labelledby="presets-title" className="space-y-4">
      <h2 id="presets-title" className="text-lg font-semibold">Presets</h2>
      <ErrorText error={error} />
      {models.length === 0 && <p className="text-sm">No provider is configured. {isAdmin ? "Add one" : "An admin adds one"} under <a className="underline" href="/settings/providers" onClick={(e) => { e.preventDefault(); navigate("/settings/providers"); }}>Providers</a>, then create a preset.</p>}
      <ul className="space-y-1">
        {presets.map((p) => (
          <li key={p.id} className="flex items-center gap-2 rounded border border-zinc-200 px-3 py-2 text-sm dark:border-zinc-700">
            <span className="font-medium">{p.name}</span>
            <span className="text-zinc-600 dark:text-zinc-400">{p.config.profile} · {p.config.model}</span>
            {isAdmin && <button type="button" className={`${secondary} ml-auto`} onClick={() => setEditing(p)} aria-label={`Edit ${p.name}`}>Edit</button>}
          </li>
        ))}
      </ul>
      {isAdmin && !editing && <button type="button" className={primary} onClick={() => setEditing("new")} disabled={models.length === 0}>New preset</button>}
      {editing && (
        <PresetForm
          preset={editing === "new" ? null : editing}
          models={models}
          onDone={() => {
            setEditing(null);
            void load();
            onChanged();
          }}
        />
      )}
    </section>
  );
}

function PresetForm({ preset, models, onDone }: { preset: PresetView | null; models: ModelList["items"]; onDone: () => void }) {
  const first = models[0];
  const [name, setName] = useState(preset?.name ?? "");
  const [description, setDescription] = useState(preset?.description ?? "");
  const [config, setConfig] = useState<PresetConfig>(preset?.config ?? EMPTY_CONFIG(first?.name ?? "", first?.models[0] ?? ""));
  const [approval, setApproval] = useState(config.approval?.mode ?? "tool_default");
  const [maxRounds, setMaxRounds] = useState(String(config.limits?.max_tool_rounds ?? 25));
  const [toolsets, setToolsets] = useState((config.toolsets ?? []).join(", "));
  const [error, setError] = useState<unknown>(null);
  const profile = models.find((m) => m.name === config.profile);
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    const rounds = Number(maxRounds);
    if (!Number.isInteger(rounds) || rounds < 1) return setError(new Error("Max tool rounds must be a whole number of at least 1."));
    const full = {
      ...config,
      toolsets: toolsets.split(",").map((s) => s.trim()).filter(Boolean),
      approval: approval === "tools" ? config.approval : ({ mode: approval } as PresetConfig["approval"]),
      limits: { ...(config.limits ?? {}), max_tool_rounds: rounds } as PresetConfig["limits"],
    };
    try {
      if (preset) await api.post(`/api/presets/${preset.id}/update`, { name, description: description || null, config: full });
      else await api.post("/api/presets/create", { name, description: description || null, config: full });
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async () => {
    if (!preset) return;
    try {
      await api.post(`/api/presets/${preset.id}/delete`, {});
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={save} className="space-y-3 rounded-lg border border-zinc-300 p-4 dark:border-zinc-600" aria-label={preset ? `Edit preset ${preset.name}` : "New preset"}>
      <Field label="Name"><input className={input} value={name} onChange={(e) => setName(e.target.value)} required /></Field>
      <Field label="Description"><input className={input} value={description} onChange={(e) => setDescription(e.target.value)} /></Field>
      <Field label="Provider profile">
        <select className={input} value={config.profile} onChange={(e) => setConfig({ ...config, profile: e.target.value, model: models.find((m) => m.name === e.target.value)?.models[0] ?? config.model })}>
          {models.map((m) => <option key={m.name} value={m.name}>{m.name}</option>)}
          {!profile && <option value={config.profile}>{config.profile} (unknown)</option>}
        </select>
      </Field>
      <Field label="Model">
        <input className={input} list="preset-models" value={config.model} onChange={(e) => setConfig({ ...config, model: e.target.value })} required />
        <datalist id="preset-models">{profile?.models.map((m) => <option key={m} value={m} />)}</datalist>
      </Field>
      <Field label="System prompt"><textarea className={input} rows={4} value={config.system_prompt ?? ""} onChange={(e) => setConfig({ ...config, system_prompt: e.target.value || null })} /></Field>
      <Field label="Tool sets" hint="Comma-separated names from /api/toolsets."><input className={input} value={toolsets} onChange={(e) => setToolsets(e.target.value)} /></Field>
      <Field label="Approval">
        <select className={input} value={approval} onChange={(e) => setApproval(e.target.value as typeof approval)}>
          <option value="tool_default">Each tool decides</option>
          <option value="always">Every call needs approval</option>
          <option value="never">No approval</option>
          {approval === "tools" && <option value="tools">Listed tools (kept)</option>}
        </select>
      </Field>
      <Field label="Max tool rounds"><input className={input} inputMode="numeric" value={maxRounds} onChange={(e) => setMaxRounds(e.target.value)} /></Field>
      <ErrorText error={error} />
      <div className="flex gap-2">
        <button type="submit" className={primary}>Save preset</button>
        <button type="button" className={secondary} onClick={onDone}>Cancel</button>
        {preset && <button type="button" className={`${danger} ml-auto`} onClick={() => void remove()}>Delete</button>}
      </div>
    </form>
  );
}

function Providers({ isAdmin, onChanged }: { isAdmin: boolean; onChanged: () => void }) {
  return isAdmin ? <ManagedProviders onChanged={onChanged} /> : <CatalogProviders />;
}

/** What a non-admin sees: the profiles presets can use. */
function CatalogProviders() {
  const [models, setModels] = useState<ModelList["items"]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => void api.get<ModelList>("/api/models").then((m) => setModels(m.items), setError), []);
  return (
    <section aria-labelledby="providers-title" className="space-y-3">
      <h2 id="providers-title" className="text-lg font-semibold">Provider profiles</h2>
      <p className="text-sm">Admins manage these profiles.</p>
      <ErrorText error={error} />
      {models.length === 0 && <p role="status" className="text-sm">No provider is configured yet: ask an admin to add one.</p>}
      <ul className="space-y-1">
        {models.map((m) => (
          <li key={m.name} className="rounded border border-zinc-200 px-3 py-2 text-sm dark:border-zinc-700">
            <span className="font-medium">{m.name}</span> <span className="text-zinc-600 dark:text-zinc-400">({m.kind ?? "custom"})</span>
            <div className="text-xs">Models: {m.models.join(", ") || "—"}</div>
          </li>
        ))}
      </ul>
    </section>
  );
}

type TestState = { running: true } | { running: false; result: ProviderTestResult } | { running: false; error: unknown };

/** Admins: config file profiles (read-only) and Settings profiles (add, edit, test, delete). */
function ManagedProviders({ onChanged }: { onChanged: () => void }) {
  const [items, setItems] = useState<ProviderView[]>([]);
  const [loaded, setLoaded] = useState(false);
  const [editing, setEditing] = useState<ProviderView | "new" | null>(null);
  const [tests, setTests] = useState<Record<string, TestState>>({});
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      const list = await api.get<ProviderList>("/api/providers/list");
      setItems(list.items);
      setLoaded(true);
    } catch (e) {
      setError(e);
    }
  }, []);
  useEffect(() => void load(), [load]);
  const test = async (p: ProviderView) => {
    setTests((t) => ({ ...t, [p.name]: { running: true } }));
    try {
      const result = await api.post<ProviderTestResult>(`/api/providers/${encodeURIComponent(p.name)}/test`, {});
      setTests((t) => ({ ...t, [p.name]: { running: false, result } }));
    } catch (err) {
      setTests((t) => ({ ...t, [p.name]: { running: false, error: err } }));
    }
  };
  const remove = async (p: ProviderView) => {
    if (!window.confirm(`Delete the provider profile "${p.name}"? Presets can no longer use it.`)) return;
    setError(null);
    try {
      await api.post(`/api/providers/${encodeURIComponent(p.name)}/delete`, {});
      void load();
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="providers-title" className="space-y-3">
      <h2 id="providers-title" className="text-lg font-semibold">Provider profiles</h2>
      <p className="text-sm">Profiles from the config file (<code>[[providers]]</code>) are read-only here. Profiles added here are stored in the database; their API key is encrypted and never shown again.</p>
      <ErrorText error={error} />
      {loaded && items.length === 0 && !editing && (
        <div role="status" className="rounded-md border border-amber-400 bg-amber-50 p-3 text-sm text-amber-900 dark:border-amber-700 dark:bg-amber-950 dark:text-amber-100">
          <p className="font-medium">No provider is configured yet.</p>
          <p>Add one to start chatting: an OpenAI-compatible server (OpenAI, OpenRouter, Ollama, vLLM, …) or Anthropic.</p>
        </div>
      )}
      <ul className="space-y-2" aria-label="Provider profiles">
        {items.map((p) => {
          const t = tests[p.name];
          return (
            <li key={`${p.source}:${p.name}`} className="space-y-1 rounded border border-zinc-200 px-3 py-2 text-sm dark:border-zinc-700" aria-label={`Provider ${p.name}`}>
              <div className="flex flex-wrap items-center gap-2">
                <span className="font-medium">{p.name}</span>
                <span className="text-zinc-600 dark:text-zinc-400">({p.kind})</span>
                <span className="rounded bg-zinc-100 px-1.5 text-xs dark:bg-zinc-800">{p.source === "config" ? "config file, read-only" : "Settings"}</span>
                {p.has_api_key && <span className="text-xs">API key set</span>}
                <span className="ml-auto flex gap-2">
                  <button type="button" className={secondary} onClick={() => void test(p)} aria-label={`Test ${p.name}`} disabled={t?.running === true}>{t?.running ? "Testing…" : "Test"}</button>
                  {p.editable && <button type="button" className={secondary} onClick={() => setEditing(p)} aria-label={`Edit ${p.name}`}>Edit</button>}
                  {p.editable && <button type="button" className={danger} onClick={() => void remove(p)} aria-label={`Delete ${p.name}`}>Delete</button>}
                </span>
              </div>
              <div className="text-xs">Base URL: {p.base_url ?? "the default"} · Models: {p.models.join(", ") || "—"}</div>
              {p.problem && <p className="text-xs text-red-700 dark:text-red-300">Not usable: {p.problem}</p>}
              {t && !t.running && (
                <div role="status" aria-label={`Test result for ${p.name}`} className="text-xs">
                  {"result" in t && t.result.ok && <span className="text-green-800 dark:text-green-300">Reachable. Models: {t.result.models.join(", ") || "none listed"}</span>}
                  {"result" in t && !t.result.ok && <span className="text-red-700 dark:text-red-300">Test failed: {t.result.error}</span>}
                  {"error" in t && <ErrorText error={t.error} />}
                </div>
              )}
            </li>
          );
        })}
      </ul>
      {!editing && <button type="button" className={primary} onClick={() => setEditing("new")}>Add provider</button>}
      {editing && (
        <ProviderForm
          provider={editing === "new" ? null : editing}
          onDone={(changed) => {
            setEditing(null);
            if (changed) {
              void load();
              onChanged();
            }
          }}
        />
      )}
    </section>
  );
}

function ProviderForm({ provider, onDone }: { provider: ProviderView | null; onDone: (changed: boolean) => void }) {
  const [name, setName] = useState(provider?.name ?? "");
  const [kind, setKind] = useState<ProviderView["kind"]>(provider?.kind ?? "openai");
  const [baseUrl, setBaseUrl] = useState(provider?.base_url ?? "");
  const [apiKey, setApiKey] = useState("");
  const [clearKey, setClearKey] = useState(false);
  const [models, setModels] = useState((provider?.models ?? []).join(", "));
  const [error, setError] = useState<unknown>(null);
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    const list = models.split(",").map((m) => m.trim()).filter(Boolean);
    try {
      if (provider) {
        const body: Record<string, unknown> = { kind, base_url: baseUrl.trim() || null, models: list };
        if (clearKey) body.api_key = "";
        else if (apiKey) body.api_key = apiKey;
        await api.post(`/api/providers/${encodeURIComponent(provider.name)}/update`, body);
      } else {
        const body: Record<string, unknown> = { name: name.trim(), kind, models: list };
        if (baseUrl.trim()) body.base_url = baseUrl.trim();
        if (apiKey) body.api_key = apiKey;
        await api.post("/api/providers/create", body);
      }
      onDone(true);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={save} className="space-y-3 rounded-lg border border-zinc-300 p-4 dark:border-zinc-600" aria-label={provider ? `Edit provider ${provider.name}` : "New provider"}>
      <Field label="Kind">
        <select className={input} value={kind} onChange={(e) => setKind(e.target.value as ProviderView["kind"])}>
          <option value="openai">OpenAI-compatible</option>
          <option value="anthropic">Anthropic</option>
        </select>
      </Field>
      <Field label="Name" hint="Letters, digits, '-', '_' and '.'; presets refer to it.">
        <input className={input} value={name} onChange={(e) => setName(e.target.value)} required disabled={provider !== null} pattern="[A-Za-z0-9._\-]{1,64}" />
      </Field>
      <Field label="Base URL" hint={kind === "openai" ? "e.g. http://127.0.0.1:11434/v1 for Ollama; empty for api.openai.com." : "Empty for api.anthropic.com."}>
        <input className={input} type="url" value={baseUrl} onChange={(e) => setBaseUrl(e.target.value)} />
      </Field>
      <Field label="API key" hint={provider?.has_api_key ? "Leave empty to keep the stored key." : "Stored encrypted; never shown again."}>
        <input className={input} type="password" autoComplete="off" value={apiKey} onChange={(e) => setApiKey(e.target.value)} disabled={clearKey} />
      </Field>
      {provider?.has_api_key && (
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={clearKey} onChange={(e) => setClearKey(e.target.checked)} />
          Remove the stored API key
        </label>
      )}
      <Field label="Models" hint="Comma-separated; the first is the default for new presets.">
        <input className={input} value={models} onChange={(e) => setModels(e.target.value)} />
      </Field>
      <ErrorText error={error} />
      <div className="flex gap-2">
        <button type="submit" className={primary}>Save provider</button>
        <button type="button" className={secondary} onClick={() => onDone(false)}>Cancel</button>
      </div>
    </form>
  );
}

function Workspaces({ isAdmin, onChanged }: { isAdmin: boolean; onChanged: () => void }) {
  const [items, setItems] = useState<WorkspaceView[]>([]);
  const [name, setName] = useState("");
  const [dirs, setDirs] = useState("");
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => api.get<WorkspaceList>("/api/workspaces/list").then((l) => setItems(l.items), setError), []);
  useEffect(() => void load(), [load]);
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api.post("/api/workspaces/create", { name, project_dirs: dirs.split("\n").map((d) => d.trim()).filter(Boolean) });
      setName("");
      setDirs("");
      void load();
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (w: WorkspaceView) => {
    try {
      await api.post(`/api/workspaces/${w.id}/delete`, {});
      void load();
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="ws-title" className="space-y-3">
      <h2 id="ws-title" className="text-lg font-semibold">Workspaces and projects</h2>
      <ErrorText error={error} />
      <ul className="space-y-1">
        {items.map((w) => (
          <li key={w.id} className="flex items-start gap-2 rounded border border-zinc-200 px-3 py-2 text-sm dark:border-zinc-700">
            <div className="flex-1">
              <div className="font-medium">{w.name}</div>
              <div className="text-xs">Projects: {w.project_dirs.join(", ") || "none"}</div>
            </div>
            {isAdmin && <button type="button" className={danger} onClick={() => void remove(w)} aria-label={`Delete workspace ${w.name}`}>Delete</button>}
          </li>
        ))}
      </ul>
      {isAdmin && (
        <form onSubmit={create} className="space-y-2">
          <Field label="New workspace name"><input className={input} value={name} onChange={(e) => setName(e.target.value)} required /></Field>
          <Field label="Project directories" hint="One absolute path per line."><textarea className={input} rows={2} value={dirs} onChange={(e) => setDirs(e.target.value)} /></Field>
          <button type="submit" className={primary}>Create workspace</button>
        </form>
      )}
    </section>
  );
}

function Users({ me }: { me: UserView }) {
  const [users, setUsers] = useState<UserView[]>([]);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<"user" | "admin">("user");
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(() => api.get<UserList>("/api/users/list").then((l) => setUsers(l.items), setError), []);
  useEffect(() => void load(), [load]);
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api.post("/api/users/create", { username, password: password || undefined, role });
      setUsername("");
      setPassword("");
      void load();
    } catch (err) {
      setError(err);
    }
  };
  const toggle = async (u: UserView) => {
    try {
      await api.post(`/api/users/${u.id}/${u.active ? "deactivate" : "activate"}`, {});
      void load();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="users-title" className="space-y-3">
      <h2 id="users-title" className="text-lg font-semibold">Users</h2>
      <ErrorText error={error} />
      <ul className="space-y-1">
        {users.map((u) => (
          <li key={u.id} className="flex items-center gap-2 rounded border border-zinc-200 px-3 py-2 text-sm dark:border-zinc-700">
            <span className="font-medium">{u.username}</span>
            <span>{u.role}</span>
            <span>{u.active ? "active" : "deactivated"}</span>
            {u.must_change_password && <span className="text-amber-800 dark:text-amber-300">temporary password</span>}
            {u.id !== me.id && <button type="button" className={`${secondary} ml-auto`} onClick={() => void toggle(u)}>{u.active ? "Deactivate" : "Activate"}</button>}
          </li>
        ))}
      </ul>
      <form onSubmit={create} className="space-y-2">
        <Field label="Username"><input className={input} value={username} onChange={(e) => setUsername(e.target.value)} required /></Field>
        <Field label="Password" hint="Temporary, at least 8 characters: the user chooses a new one at first sign-in. Leave empty for an API-key-only account."><input className={input} type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} /></Field>
        <Field label="Role">
          <select className={input} value={role} onChange={(e) => setRole(e.target.value as "user" | "admin")}>
            <option value="user">user</option>
            <option value="admin">admin</option>
          </select>
        </Field>
        <button type="submit" className={primary}>Create user</button>
      </form>
    </section>
  );
}
