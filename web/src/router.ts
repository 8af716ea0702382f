import { useEffect, useState } from "react";

export type Route =
  | { page: "chat"; conversationId: string | null }
  | { page: "settings"; tab: string };

export function parseRoute(path: string): Route {
  const chat = path.match(/^\/c\/([0-9a-fA-F-]{36})\/?$/);
  if (chat) return { page: "chat", conversationId: chat[1] };
  const settings = path.match(/^\/settings(?:\/([a-z-]+))?\/?$/);
  if (settings) return { page: "settings", tab: settings[1] ?? "keys" };
  return { page: "chat", conversationId: null };
}

export function navigate(path: string) {
  if (location.pathname === path) return;
  history.pushState(null, "", path);
  dispatchEvent(new PopStateEvent("popstate"));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.pathname));
    addEventListener("popstate", on);
    return () => removeEventListener("popstate", on);
  }, []);
  return route;
}
