// End-to-end: the embedded web UI in Debian's Chromium (playwright-core, no
// browser download) against a real `netherbrain agent` and a fake
// OpenAI-compatible provider on loopback, on a desktop and a phone viewport.
// Screenshots go to e2e/artifacts/. Run: `npm run e2e` (after building the
// `netherbrain` binary; NETHERBRAIN_BIN overrides its path).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium, devices } from "playwright-core";
import { startFakeProvider } from "./fake-provider.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const artifacts = path.join(here, "artifacts");
fs.mkdirSync(artifacts, { recursive: true });

const bin =
  process.env.NETHERBRAIN_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(here, "..", "..", "target"), "debug", "netherbrain");
const browserPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const PATIENCE = 20_000;

let provider, agent, browser, base, uiLink, adminToken, home;
const agentLog = [];
const figures = {};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

before(async () => {
  provider = await startFakeProvider();
  home = fs.mkdtempSync(path.join(os.tmpdir(), "nb-webui-e2e-"));
  fs.writeFileSync(
    path.join(home, "config.toml"),
    `[[providers]]\nname = "fake"\nkind = "openai"\nbase_url = "${provider.baseUrl}"\napi_key_env = "OPENAI_API_KEY"\nmodels = ["${provider.model}"]\n`,
  );
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  agent = spawn(bin, ["--config", path.join(home, "config.toml"), "--data-dir", path.join(home, "data"), "agent", "--port", String(port)], {
    cwd: home,
    env: { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: path.join(home, "xdg"), OPENAI_API_KEY: "sk-fake", NETHER_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  agent.stdout.on("data", (d) => agentLog.push(String(d)));
  agent.stderr.on("data", (d) => agentLog.push(String(d)));
  // first run: the agent prints the UI's address with the one-time admin token
  const started = Date.now();
  while (!uiLink) {
    if (agent.exitCode !== null) throw new Error(`agent exited: ${agentLog.join("")}`);
    if (Date.now() - started > 60_000) throw new Error(`no UI link printed: ${agentLog.join("")}`);
    const m = agentLog.join("").match(/Web UI: (http:\/\/\S+\/\?token=(\S+))/);
    if (m) {
      uiLink = m[1];
      adminToken = m[2];
    } else await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({ executablePath: browserPath, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
});

after(async () => {
  await browser?.close();
  agent?.kill("SIGTERM");
  provider?.close();
  if (agent && agent.exitCode === null) await new Promise((r) => agent.once("exit", r));
  if (home) fs.rmSync(home, { recursive: true, force: true });
  fs.writeFileSync(path.join(artifacts, "figures.json"), JSON.stringify(figures, null, 2));
  if (process.exitCode) console.error(agentLog.join(""));
});

async function axe(page, screen) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ["violations"] }),
  );
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `axe on ${screen}`,
  );
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`) });
}

async function api(pathname, body) {
  const res = await fetch(base + pathname, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `${pathname}: ${res.status} ${await res.clone().text()}`);
  return res.json();
}

function watchConsole(page) {
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  return problems;
}

const composer = (page) => page.getByRole("textbox", { name: /Message|Steer/ });

async function send(page, text) {
  await composer(page).fill(text);
  await composer(page).press("Enter");
}

async function scenario(name, context, login) {
  const page = await context.newPage();
  const problems = watchConsole(page);
  await login(page);
  await page.getByRole("heading", { name: "What can I help with?" }).waitFor({ timeout: PATIENCE });
  await axe(page, `${name} empty chat`);

  // send and see the streamed Markdown reply with a highlighted code block
  await send(page, "hello there");
  await page.waitForURL(/\/c\/[0-9a-f-]{36}$/, { timeout: PATIENCE });
  const reply = page.getByTestId("assistant-message").last();
  await reply.getByText("Hello from the").waitFor({ timeout: PATIENCE });
  await reply.locator("strong", { hasText: "fake" }).waitFor();
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });
  await page.getByTestId("live-turn").waitFor({ state: "detached", timeout: PATIENCE });
  const stored = page.getByTestId("assistant-message").last();
  await stored.getByRole("button", { name: /Copy rust code/ }).waitFor();
  await stored.locator(".hljs-keyword").first().waitFor();
  await page.getByTestId("usage").first().waitFor();
  assert.equal(await composer(page).inputValue(), "", "the sent message left the composer");
  await axe(page, `${name} chat`);
  await shot(page, `${name}-chat`);

  // image attachments: within the limit they are sent, above it refused in words
  if (name === "desktop") {
    const png = Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
      "base64",
    );
    const picker = page.locator('input[type="file"]');
    await picker.setInputFiles({ name: "big.png", mimeType: "image/png", buffer: Buffer.alloc(800 * 1024, 1) });
    await page.getByRole("alert").getByText(/Images may add up to 700 KB/).waitFor();
    await picker.setInputFiles({ name: "dot.png", mimeType: "image/png", buffer: png });
    await page.getByRole("list", { name: "Attachments" }).getByText("dot.png").waitFor();
    await send(page, "what is in this image");
    await page.getByRole("img", { name: "Attachment 1" }).first().waitFor({ timeout: PATIENCE });
    await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });
    await page.getByTestId("assistant-message").nth(1).waitFor({ timeout: PATIENCE });
    const sent = JSON.stringify(provider.requests[provider.requests.length - 1].messages);
    assert.ok(sent.includes("data:image/png;base64," + png.toString("base64")), sent.slice(0, 500));
  }

  // a tool call shows as a card with its status and result
  await send(page, "please use the tool");
  const card = page.getByTestId("tool-card").last();
  await card.getByText("lookup", { exact: true }).waitFor({ timeout: PATIENCE });
  await card.getByText("error", { exact: true }).waitFor({ timeout: PATIENCE });
  await page.getByText("Tool round done.").waitFor({ timeout: PATIENCE });
  // the finished turn replaces the live one: open the stored card
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });
  await page.getByTestId("live-turn").waitFor({ state: "detached", timeout: PATIENCE });
  await card.locator("summary").click();
  await card.getByText("weather").waitFor();
  await shot(page, `${name}-tool`);

  // stop a streaming run (the Stop button; Esc is bound too)
  await send(page, "a slow story please");
  await page.getByTestId("live-turn").getByText("word3", { exact: false }).waitFor({ timeout: PATIENCE });
  await page.getByRole("button", { name: "Steer" }).waitFor();
  await shot(page, `${name}-streaming`);
  await page.getByRole("button", { name: "Stop" }).click();
  await page.getByText("Stopped.").last().waitFor({ timeout: PATIENCE });
  assert.equal(await page.getByText("THE END.").count(), 0, "the stopped run did not finish");

  // steer a streaming run: the text joins the run and the model answers it
  await send(page, "another slow one");
  await page.getByTestId("live-turn").getByText("word2 ", { exact: false }).waitFor({ timeout: PATIENCE });
  await page.getByRole("button", { name: "Steer" }).waitFor();
  await composer(page).fill("shorter please");
  await page.getByRole("button", { name: "Steer" }).click();
  await page.getByText("Short answer.").last().waitFor({ timeout: 30_000 });
  await page.getByTestId("user-message").getByText("shorter please").first().waitFor();
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });

  // reload mid-run: the page reattaches and the text continues without duplicates
  await send(page, "slow again for a reload");
  await page.getByTestId("live-turn").getByText("word4 ", { exact: false }).waitFor({ timeout: PATIENCE });
  await page.reload();
  await page.getByTestId("live-turn").waitFor({ timeout: PATIENCE });
  await page.getByText("THE END.").last().waitFor({ timeout: 30_000 });
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });
  const last = await page.getByTestId("assistant-message").last().locator(".md").innerText();
  assert.equal(last.match(/word10 /g)?.length, 1, `no duplicated text after reload: ${last}`);
  assert.ok(last.startsWith("word1 word2 word3 word4 word5"), last);

  // fork from the first turn
  const before = page.url();
  await page.getByRole("button", { name: "Fork from this turn" }).first().click();
  await page.waitForURL((u) => u.href !== before && /\/c\//.test(u.href), { timeout: PATIENCE });
  await page.getByRole("heading", { name: /\(fork\)/ }).waitFor({ timeout: PATIENCE });
  await page.getByText("Hello from the").waitFor({ timeout: PATIENCE });
  await page.getByText("Forked from").waitFor();
  assert.equal(await page.getByText("THE END.").count(), 0, "the fork holds only the first turn");
  // the fork continues from the first turn
  await send(page, "hello from the fork");
  await page.getByTestId("assistant-message").nth(1).waitFor({ timeout: PATIENCE });
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });
  const forkRequest = JSON.stringify(provider.requests[provider.requests.length - 1].messages);
  assert.ok(forkRequest.includes("hello there") && forkRequest.includes("hello from the fork"), forkRequest);
  assert.ok(!forkRequest.includes("slow"), `the fork does not see later turns: ${forkRequest}`);

  // a run started from another surface appears live in the open chat
  const forkId = page.url().split("/c/")[1];
  await api("/api/conversations/run", { conversation_id: forkId, input: "a slow hello from another surface", stream: false });
  await page.getByTestId("live-turn").getByText("word2 ", { exact: false }).waitFor({ timeout: PATIENCE });
  await page.getByRole("button", { name: "Stop" }).waitFor();
  await page.getByText("THE END.").waitFor({ timeout: 30_000 });
  await page.getByText("a slow hello from another surface").waitFor({ timeout: PATIENCE });

  // sidebar: rename, search and archive (desktop, where it is always shown)
  if (name === "desktop") {
    const list = page.getByRole("navigation", { name: "Conversations" });
    await list.getByRole("button", { name: "Rename hello there (fork)", exact: true }).click();
    await list.getByRole("textbox", { name: "New title" }).fill("Renamed fork");
    await list.getByRole("textbox", { name: "New title" }).press("Enter");
    await list.getByRole("link", { name: "Renamed fork", exact: true }).waitFor({ timeout: PATIENCE });
    await page.getByRole("heading", { name: "Renamed fork" }).waitFor({ timeout: PATIENCE });
    await list.getByRole("searchbox", { name: "Search conversations" }).fill("story");
    await list.getByRole("list", { name: "Search results" }).getByRole("link", { name: "hello there", exact: true }).waitFor({ timeout: PATIENCE });
    assert.equal(await list.getByRole("link", { name: "Renamed fork", exact: true }).count(), 0, "the fork never saw the story turn");
    await list.getByRole("searchbox", { name: "Search conversations" }).fill("");
    await list.getByRole("button", { name: "Archive Renamed fork", exact: true }).click();
    await page.waitForURL(base + "/", { timeout: PATIENCE });
    await list.getByRole("link", { name: "Renamed fork", exact: true }).waitFor({ state: "detached", timeout: PATIENCE });
    await shot(page, `${name}-sidebar`);
  }

  // create an API key in Settings: the secret is shown once
  if (await page.getByRole("button", { name: "Open sidebar" }).isVisible()) {
    await page.getByRole("button", { name: "Open sidebar" }).click();
    await shot(page, `${name}-sidebar`);
  }
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  await page.getByRole("textbox", { name: "New key name" }).fill(`e2e ${name}`);
  await page.getByRole("button", { name: "Create key" }).click();
  const secret = await page.getByTestId("new-key-secret").innerText();
  assert.match(secret, /^nb_/);
  await page.getByRole("cell", { name: `e2e ${name}`, exact: true }).waitFor();
  await axe(page, `${name} settings`);
  await shot(page, `${name}-settings`);
  await page.getByRole("link", { name: "Presets" }).click();
  await page.getByText("fake · fake-model").waitFor();
  await axe(page, `${name} presets`);
  await shot(page, `${name}-presets`);

  assert.deepEqual(problems, [], "no CSP violations or page errors");
  await page.close();
}

test("desktop: first-run link, chat, tool card, stop, steer, reload, fork, API key", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await scenario("desktop", context, async (page) => {
    const loginPage = await context.newPage();
    await loginPage.goto(base + "/");
    await loginPage.getByRole("heading", { name: "Sign in to Netherbrain" }).waitFor();
    await axe(loginPage, "login");
    await shot(loginPage, "desktop-login");
    await loginPage.close();
    // the link printed on first run signs the admin in
    await page.goto(uiLink);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Choose a password" }).waitFor({ timeout: PATIENCE });
    await page.getByLabel("New password").fill("correct horse battery");
    await page.getByLabel("Repeat it").fill("correct horse battery");
    await page.getByRole("button", { name: "Set password" }).click();
    assert.ok(!page.url().includes("token="), "the token leaves the address bar");
  });
  await context.close();
});

test("phone: temporary password replaced at first login, chat, tool card, stop, steer, reload, fork, API key", async () => {
  // a password an admin sets is temporary
  const created = await api("/api/users/create", { username: "phone", password: "phone-temporary", role: "user" });
  assert.equal(created.must_change_password, true);
  const context = await browser.newContext({ ...devices["Pixel 7"], isMobile: true, hasTouch: true });
  await scenario("phone", context, async (page) => {
    await page.goto(base + "/");
    await page.getByLabel("Username").fill("phone");
    await page.getByLabel("Password").fill("phone-temporary");
    await page.getByRole("button", { name: "Sign in" }).click();
    // nothing else until a new password is chosen: no "Later"
    await page.getByRole("heading", { name: "Choose a new password" }).waitFor({ timeout: PATIENCE });
    assert.equal(await page.getByRole("button", { name: "Later" }).count(), 0);
    await axe(page, "phone new password");
    await shot(page, "phone-new-password");
    await page.getByLabel("New password", { exact: true }).fill("phone-temporary");
    await page.getByLabel("Repeat it").fill("phone-temporary");
    await page.getByRole("button", { name: "Set password" }).click();
    await page.getByRole("alert").getByText("the new password must differ from the temporary one").waitFor({ timeout: PATIENCE });
    await page.getByLabel("New password", { exact: true }).fill("phone-password-1");
    await page.getByLabel("Repeat it").fill("phone-password-1");
    await page.getByRole("button", { name: "Set password" }).click();
  });
  // the temporary password no longer signs in
  const old = await fetch(base + "/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "phone", password: "phone-temporary" }),
  });
  assert.equal(old.status, 401);
  // navigation to an interactive chat on the phone viewport, signed in
  const page = await context.newPage();
  const t0 = Date.now();
  await page.goto(base + "/");
  await composer(page).waitFor({ state: "visible" });
  await page.getByRole("heading", { name: "What can I help with?" }).waitFor();
  figures.phone_navigation_to_interactive_ms = Date.now() - t0;
  figures.phone_dom_content_loaded_ms = await page.evaluate(() => {
    const [nav] = performance.getEntriesByType("navigation");
    return Math.round(nav.domContentLoadedEventEnd);
  });
  await context.close();
});

test("an expired token returns to login and keeps the draft", async () => {
  const context = await browser.newContext({ viewport: { width: 1024, height: 700 } });
  const page = await context.newPage();
  const key = await api("/api/keys/create", { name: "short-lived" });
  await page.goto(base + "/");
  await page.getByRole("button", { name: "Token" }).click();
  await page.getByLabel("Token").fill(key.secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await composer(page).waitFor({ timeout: PATIENCE });
  await composer(page).fill("a draft worth keeping");
  await api(`/api/keys/${key.key.id}/revoke`, {});
  // the next request answers 401 (the composer still has focus)
  await page.keyboard.press("Enter");
  await page.getByText("Your session expired").waitFor({ timeout: PATIENCE });
  await page.getByRole("button", { name: "Password" }).click();
  await page.getByLabel("Username").fill("phone");
  await page.getByLabel("Password").fill("phone-password-1");
  await page.getByRole("button", { name: "Sign in" }).click();
  await composer(page).waitFor({ timeout: PATIENCE });
  assert.equal(await composer(page).inputValue(), "a draft worth keeping");
  await context.close();
});

test("desktop: a shell call waits for approval; Approve runs it, Deny refuses it", async () => {
  // a preset with the shell tool set (its `shell_run` asks for approval) and
  // a workspace with a project directory for it to run in
  const project = path.join(home, "data", "workspaces", "approvals");
  fs.mkdirSync(project, { recursive: true });
  await api("/api/workspaces/create", { name: "approvals", project_dirs: [project] });
  await api("/api/presets/create", {
    name: "shell",
    config: { profile: "fake", model: provider.model, toolsets: ["shell"], tool_options: { shell: { sandbox: "none" } } },
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watchConsole(page);
  await page.goto(base + "/");
  await page.getByRole("button", { name: "Token" }).click();
  await page.getByLabel("Token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await composer(page).waitFor({ timeout: PATIENCE });
  await page.getByLabel("Workspace").selectOption({ label: "approvals" });
  await page.getByLabel("Preset").selectOption({ label: "shell" });

  // Approve: the run resumes, the command runs, the answer uses its output
  await send(page, "what does the shell say");
  await page.waitForURL(/\/c\/[0-9a-f-]{36}$/, { timeout: PATIENCE });
  const card = page.getByTestId("tool-card").last();
  await card.getByText("shell_run", { exact: true }).waitFor({ timeout: PATIENCE });
  await card.getByText("awaiting approval", { exact: true }).waitFor({ timeout: PATIENCE });
  await card.getByRole("button", { name: "Deny" }).waitFor();
  assert.equal(await composer(page).inputValue(), "", "the sent message left the composer");
  await axe(page, "desktop approval");
  await shot(page, "desktop-approval");
  await card.getByRole("button", { name: "Approve" }).click();
  await page.getByText("The shell said 42.").waitFor({ timeout: PATIENCE });
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });
  await page.getByTestId("live-turn").waitFor({ state: "detached", timeout: PATIENCE });
  const ran = page.getByTestId("tool-card").filter({ hasText: "shell_run" }).first();
  await ran.getByText("complete", { exact: true }).waitFor({ timeout: PATIENCE });
  const approved = JSON.stringify(provider.requests[provider.requests.length - 1].messages);
  assert.ok(approved.includes("approved-42"), `the model read the command's output: ${approved.slice(-600)}`);
  assert.equal(await page.getByRole("button", { name: "Approve" }).count(), 0, "no approval left to give");

  // Deny: the command never runs and the model reads the refusal
  const before = provider.requests.length;
  await send(page, "ask the shell once more");
  const second = page.getByTestId("tool-card").last();
  await second.getByText("awaiting approval", { exact: true }).waitFor({ timeout: PATIENCE });
  await second.getByRole("button", { name: "Deny" }).click();
  await page.getByText("I was not allowed to run it.").waitFor({ timeout: PATIENCE });
  await page.getByRole("button", { name: "Send" }).waitFor({ timeout: PATIENCE });
  await page.getByTestId("live-turn").waitFor({ state: "detached", timeout: PATIENCE });
  await page.getByTestId("tool-card").last().getByText("denied", { exact: true }).waitFor({ timeout: PATIENCE });
  const denied = provider.requests.slice(before).map((r) => JSON.stringify(r.messages)).join("\n");
  assert.ok(!denied.slice(denied.lastIndexOf("ask the shell once more")).includes("approved-42"), "the denied command did not run");
  await shot(page, "desktop-denied");
  assert.deepEqual(problems, [], "no CSP violations or page errors");
  await context.close();
});

test("desktop: an admin adds a provider in Settings, tests it and deletes it", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watchConsole(page);
  await page.goto(base + "/");
  await page.getByRole("button", { name: "Token" }).click();
  await page.getByLabel("Token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await composer(page).waitFor({ timeout: PATIENCE });
  await page.goto(base + "/settings/providers");
  await page.getByRole("heading", { name: "Provider profiles" }).waitFor({ timeout: PATIENCE });

  // the config file's profile is listed read-only
  const configured = page.getByRole("listitem", { name: "Provider fake" });
  await configured.getByText("config file, read-only").waitFor({ timeout: PATIENCE });
  assert.equal(await configured.getByRole("button", { name: "Edit fake" }).count(), 0, "config profiles cannot be edited");

  await page.getByRole("button", { name: "Add provider" }).click();
  const form = page.getByRole("form", { name: "New provider" });
  await form.getByLabel("Kind").selectOption("openai");
  await form.getByLabel("Name").fill("from-ui");
  await form.getByLabel("Base URL").fill(provider.baseUrl);
  await form.getByLabel("API key").fill("sk-ui-secret-5d4c");
  assert.equal(await form.getByLabel("API key").getAttribute("type"), "password");
  await form.getByLabel("Models").fill(provider.model);
  await axe(page, "desktop provider form");
  await form.getByRole("button", { name: "Save provider" }).click();

  const added = page.getByRole("listitem", { name: "Provider from-ui" });
  await added.getByText("API key set").waitFor({ timeout: PATIENCE });
  await added.getByRole("button", { name: "Test from-ui" }).click();
  await page.getByRole("status", { name: "Test result for from-ui" }).getByText(`Reachable. Models: ${provider.model}`).waitFor({ timeout: PATIENCE });
  await axe(page, "desktop providers");
  await shot(page, "desktop-providers");
  const listed = await api("/api/providers/list");
  assert.ok(!JSON.stringify(listed).includes("sk-ui-secret"), "the API never returns the key");
  assert.deepEqual(listed.items.map((p) => [p.name, p.source]), [["fake", "config"], ["from-ui", "settings"]]);
  const models = await api("/api/models");
  assert.ok(models.items.some((m) => m.name === "from-ui"), "runs can use it at once");

  page.once("dialog", (d) => void d.accept());
  await added.getByRole("button", { name: "Delete from-ui" }).click();
  await added.waitFor({ state: "detached", timeout: PATIENCE });
  assert.deepEqual((await api("/api/providers/list")).items.map((p) => p.name), ["fake"]);
  assert.deepEqual(problems, [], "no CSP violations or page errors");
  await context.close();
});
