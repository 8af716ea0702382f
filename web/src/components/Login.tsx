import { useState } from "react";
import { api, auth } from "../api/client";
import type { LoginResponse, UserView } from "../api/types";
import { ErrorText, Field, input, primary, secondary } from "./ui";

export function Login({ onLoggedIn, expired }: { onLoggedIn: (u: UserView, password?: string) => void; expired: boolean }) {
  const linkToken = new URLSearchParams(location.search).get("token");
  const [mode, setMode] = useState<"password" | "token">(linkToken ? "token" : "password");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [token, setToken] = useState(linkToken ?? "");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === "password") {
        const res = await api.post<LoginResponse>("/api/auth/login", { username, password });
        auth.set(res.token);
        // kept in memory only, to replace a temporary password without asking for it again
        onLoggedIn(res.user, password);
      } else {
        auth.set(token.trim());
        const me = await api.get<UserView>("/api/auth/me");
        // the one-time token is not left in the address bar
        if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);
        onLoggedIn(me);
      }
    } catch (err) {
      if (mode === "token") auth.clear();
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="flex min-h-full items-center justify-center p-4">
      <form onSubmit={submit} className="w-full max-w-sm space-y-4 rounded-xl border border-zinc-200 p-6 shadow-sm dark:border-zinc-700" aria-labelledby="login-title">
        <h1 id="login-title" className="text-xl font-semibold">Sign in to Netherbrain</h1>
        {expired && <p role="status" className="text-sm text-amber-800 dark:text-amber-300">Your session expired. Sign in again; your draft is kept.</p>}
        <div role="group" aria-label="Sign-in method" className="flex gap-2">
          <button type="button" className={mode === "password" ? primary : secondary} aria-pressed={mode === "password"} onClick={() => setMode("password")}>Password</button>
          <button type="button" className={mode === "token" ? primary : secondary} aria-pressed={mode === "token"} onClick={() => setMode("token")}>Token</button>
        </div>
        {mode === "password" ? (
          <>
            <Field label="Username"><input className={input} autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required /></Field>
            <Field label="Password"><input className={input} type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required /></Field>
          </>
        ) : (
          <Field label="Token" hint="An API key or the one-time admin token printed by `netherbrain agent`.">
            <input className={input} type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} required />
          </Field>
        )}
        <ErrorText error={error} />
        <button type="submit" className={`${primary} w-full`} disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      </form>
    </main>
  );
}

/**
 * Asked after signing in: once, skippable, for an account without a password
 * (e.g. the first admin's token); always, and before anything else, when the
 * password is temporary (`must_change_password`: set by an admin). `current`
 * is the password just used to sign in, when known.
 */
export function SetPassword({ user, current, onDone, onSignOut }: { user: UserView; current?: string | null; onDone: (u: UserView) => void; onSignOut: () => void }) {
  const forced = user.must_change_password;
  const [temporary, setTemporary] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const askCurrent = user.has_password && !current;
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (password !== confirm) return setError(new Error("The two passwords differ."));
    setBusy(true);
    setError(null);
    try {
      const body = user.has_password ? { current_password: current || temporary, new_password: password } : { new_password: password };
      onDone(await api.post<UserView>("/api/auth/password", body));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="flex min-h-full items-center justify-center p-4">
      <form onSubmit={submit} className="w-full max-w-sm space-y-4 rounded-xl border border-zinc-200 p-6 dark:border-zinc-700" aria-labelledby="pw-title">
        <h1 id="pw-title" className="text-xl font-semibold">{forced ? "Choose a new password" : "Choose a password"}</h1>
        {forced ? (
          <p className="text-sm">The password of <strong>{user.username}</strong> was set by an administrator and is temporary. Choose your own to continue.</p>
        ) : (
          <p className="text-sm">The account <strong>{user.username}</strong> has no password yet. Set one to sign in with it next time.</p>
        )}
        {askCurrent && <Field label="Temporary password"><input className={input} type="password" autoComplete="current-password" value={temporary} onChange={(e) => setTemporary(e.target.value)} required /></Field>}
        <Field label="New password"><input className={input} type="password" autoComplete="new-password" minLength={8} value={password} onChange={(e) => setPassword(e.target.value)} required /></Field>
        <Field label="Repeat it"><input className={input} type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} required /></Field>
        <ErrorText error={error} />
        <div className="flex gap-2">
          <button type="submit" className={primary} disabled={busy}>Set password</button>
          {forced ? (
            <button type="button" className={secondary} onClick={onSignOut}>Sign out</button>
          ) : (
            <button type="button" className={secondary} onClick={() => onDone(user)}>Later</button>
          )}
        </div>
      </form>
    </main>
  );
}
