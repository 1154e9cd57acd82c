import assert from "node:assert/strict";
import { test } from "node:test";
import { Api, ApiError, MemoryTokenStore } from "../src/client/api.js";
import { auth, FakeTimers, fakeOrigin, signedInApi } from "./fakes.js";

test("sign-in stores the session with its expiry", async () => {
  const timers = new FakeTimers();
  timers.now = 1_000_000;
  const { fetch, calls } = fakeOrigin({ "POST /api/signin": () => [200, auth(1)] });
  const store = new MemoryTokenStore();
  const api = new Api({ baseUrl: "https://pool.test", store, fetch, now: () => timers.now });
  const seen: unknown[] = [];
  api.onSession = (s) => seen.push(s?.accessToken);
  await api.signin("ada@acme.test", "correct horse");
  assert.equal(store.load()!.expiresAt, 1_000_000 + 900_000);
  assert.deepEqual(calls[0].body, { email: "ada@acme.test", password: "correct horse" });
  assert.deepEqual(seen, ["access-1"]);
});

test("the access token is refreshed a minute before it expires, once for concurrent callers", async () => {
  const timers = new FakeTimers();
  const { fetch, calls } = fakeOrigin({
    "POST /api/refresh": (_c, n) => [200, auth(n + 1)],
    "GET /api/chat": () => [200, []],
  });
  const api = signedInApi(fetch, timers);
  await api.chats();
  assert.equal(calls.at(-1)!.auth, "Bearer access-1");
  timers.now += 900_000 - 59_000;
  await Promise.all([api.chats(), api.chats(), api.chats()]);
  const refreshes = calls.filter((c) => c.path === "/api/refresh");
  assert.equal(refreshes.length, 1);
  assert.deepEqual(refreshes[0].body, { refreshToken: "refresh-1" });
  assert.ok(calls.filter((c) => c.path === "/api/chat").slice(1).every((c) => c.auth === "Bearer access-2"));
});

test("a call answered token_expired is refreshed and retried once", async () => {
  const timers = new FakeTimers();
  const { fetch, calls } = fakeOrigin({
    "POST /api/refresh": () => [200, auth(2)],
    "GET /api/users": (c) =>
      c.auth === "Bearer access-1" ? [401, { error: { code: "token_expired", message: "expired" } }] : [200, [{ id: 1 }]],
  });
  const api = signedInApi(fetch, timers);
  assert.deepEqual(await api.users(), [{ id: 1 }]);
  assert.deepEqual(calls.map((c) => c.path), ["/api/users", "/api/refresh", "/api/users"]);
});

test("errors carry the server's code and retryAfterMs; network failures are code network", async () => {
  const timers = new FakeTimers();
  const { fetch } = fakeOrigin({
    "GET /api/chat": () => [429, { error: { code: "rate_limited", message: "slow down", retryAfterMs: 1840 } }],
    "GET /api/users": () => [0, null],
  });
  const api = signedInApi(fetch, timers);
  await assert.rejects(api.chats(), (e: ApiError) => e.status === 429 && e.code === "rate_limited" && e.retryAfterMs === 1840);
  await assert.rejects(api.users(), (e: ApiError) => e.status === 0 && e.code === "network");
});

test("a refused refresh signs out", async () => {
  const timers = new FakeTimers();
  const { fetch } = fakeOrigin({ "POST /api/refresh": () => [401, { error: { code: "unauthorized", message: "session revoked" } }] });
  const api = signedInApi(fetch, timers);
  await assert.rejects(api.refresh(), (e: ApiError) => e.code === "unauthorized");
  assert.equal(api.session, null);
  await assert.rejects(api.accessToken(), (e: ApiError) => e.status === 401);
});

test("query parameters are encoded and empty ones left out", async () => {
  const timers = new FakeTimers();
  const { fetch, calls } = fakeOrigin({ "GET /api/search/messages": () => [200, { scope: "messages", results: [], cursor: null }] });
  const api = signedInApi(fetch, timers);
  await api.search("messages", "from:@bob budget & more", { chatId: 7, cursor: undefined });
  assert.equal(calls[0].path, "/api/search/messages?q=from%3A%40bob+budget+%26+more&chatId=7");
});

test("a verified-mode sign-up says a mail was sent instead of signing in", async () => {
  const timers = new FakeTimers();
  const { fetch } = fakeOrigin({ "POST /api/signup": () => [202, { status: "verification_sent", expiresInSecs: 86400 }] });
  const api = new Api({ baseUrl: "", store: new MemoryTokenStore(), fetch, now: () => timers.now });
  await assert.rejects(
    api.signup({ fullname: "Ada", email: "a@acme.test", password: "correct horse", workspace: "Acme" }),
    (e: ApiError) => e.code === "verification_sent",
  );
  assert.equal(api.session, null);
});
