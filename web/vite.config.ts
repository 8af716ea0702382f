import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The production build goes straight into the folder netherbrain-http embeds.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../netherbrain-http/webui-dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    // Inline nothing: the CSP forbids data: scripts and inline styles.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    proxy: { "/api": { target: "http://127.0.0.1:8080", ws: true }, "/v1": "http://127.0.0.1:8080" },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
