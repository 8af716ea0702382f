import type { ErrorBody } from "./types";

const TOKEN_KEY = "netherbrain.token";

/** An API failure with the server's words (or ours when there were none). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Listener = () => void;
let unauthorized: Listener[] = [];

export const auth = {
  token(): string | null {
    return localStorage.getItem(TOKEN_KEY);
  },
  set(token: string) {
    localStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
  },
  /** Called when the server answers 401: the token expired or was revoked. */
  onUnauthorized(fn: Listener): () => void {
    unauthorized.push(fn);
    return () => {
      unauthorized = unauthorized.filter((f) => f !== fn);
    };
  },
};

export function headers(extra?: Record<string, string>): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  const token = auth.token();
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

/** Turns a non-2xx response into an ApiError with the server's message. */
export async function failure(res: Response): Promise<ApiError> {
  let code = "http_" + res.status;
  let message = `The server answered ${res.status} ${res.statusText}`.trim();
  try {
    const body = (await res.json()) as ErrorBody;
    if (body?.error?.message) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (res.status === 401) {
    auth.clear();
    unauthorized.forEach((f) => f());
  }
  return new ApiError(res.status, code, message);
}

async function call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: headers(body === undefined ? undefined : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
  }
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const api = {
  get: <T>(path: string) => call<T>("GET", path),
  post: <T>(path: string, body: unknown = {}) => call<T>("POST", path, body),
};

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
