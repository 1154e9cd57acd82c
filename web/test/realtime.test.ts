import assert from "node:assert/strict";
import { test } from "node:test";
import { Realtime, RETRY_MS, PING_TIMEOUT_MS, type ConnectionState } from "../src/client/realtime.js";
import { MessageCache } from "../src/client/cache.js";
import type { Frame } from "../src/client/types.js";
import { auth, FakeSocket, FakeTimers, fakeOrigin, flush, ready, signedInApi } from "./fakes.js";

function message(seq: number, extra: object = {}) {
  return { id: 100 + seq, chatId: 7, seq, senderId: 2, content: `m${seq}`, clientId: `c${seq}`, replyTo: null, mentions: [], createdAt: "", editedAt: null, deletedAt: null, ...extra };
}
function newMessage(seq: number, eventSeq = seq, extra: object = {}) {
  return { type: "message.new", id: `c7:${seq}-0`, timestamp: "", payload: { chatId: 7, eventId: `${seq}-0`, eventSeq, message: message(seq, extra) } };
}

/** A Realtime over fake sockets and timers; `sockets` are the connections it opened. */
async function setup(routes: Parameters<typeof fakeOrigin>[0] = {}) {
  const timers = new FakeTimers();
  const origin = fakeOrigin({ "POST /api/refresh": (_c, n) => [200, auth(n + 1)], ...routes });
  const api = signedInApi(origin.fetch, timers);
  const sockets: FakeSocket[] = [];
  let n = 0;
  const rt = new Realtime({
    api,
    url: "wss://pool.test/ws",
    socket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    timers,
    now: () => timers.now,
    random: () => 0,
    newId: () => `id-${++n}`,
  });
  const states: ConnectionState[] = [];
  const frames: { frame: Frame; live: boolean }[] = [];
  rt.on("state", (s) => states.push(s));
  rt.on("frame", (f) => frames.push(f));
  rt.start();
  await flush();
  return { rt, timers, sockets, states, frames, origin, last: () => sockets.at(-1)! };
}

test("connects with the token in the URL and is open after session.ready", async () => {
  const { rt, last, states } = await setup();
  assert.equal(last().url, "wss://pool.test/ws?token=access-1");
  last().receive("session.ready", ready([7]));
  assert.equal(rt.state, "open");
  assert.deepEqual(states, ["connecting", "open"]);
  assert.equal(rt.ready!.instance, "gw1");
});

test("a send shows at once, is retried with the same id after 5 s without an answer, and settles on the ack", async () => {
  const { rt, last, timers } = await setup();
  last().receive("session.ready", ready([7]));
  const clientId = rt.send(7, "hello");
  assert.deepEqual(rt.cache.messages(7).map((m) => [m.content, m.status]), [["hello", "sending"]]);
  assert.deepEqual(last().ofType("message.send").map((f) => f.id), [clientId]);
  await timers.advance(RETRY_MS);
  assert.deepEqual(last().ofType("message.send").map((f) => f.id), [clientId, clientId]);
  last().ack(clientId, { messageId: 55, seq: 1 });
  await flush();
  await timers.advance(3 * RETRY_MS);
  assert.equal(last().ofType("message.send").length, 2, "no retry after the answer");
  assert.deepEqual(rt.cache.messages(7).map((m) => [m.id, m.seq, m.status]), [[55, 1, "sent"]]);
});

test("the sender's own message.new before the ack shows the message once", async () => {
  const { rt, last } = await setup();
  last().receive("session.ready", ready([7]));
  const clientId = rt.send(7, "hi");
  const echo = newMessage(1, 1, { content: "hi", clientId, senderId: 1 });
  last().receive(echo.type, echo.payload, echo.id);
  last().ack(clientId, { messageId: 101, seq: 1 });
  await flush();
  assert.deepEqual(rt.cache.messages(7).map((m) => [m.seq, m.content]), [[1, "hi"]]);
});

test("writes refused as rate_limited wait retryAfterMs and go again; other errors fail the send", async () => {
  const { rt, last, timers } = await setup();
  last().receive("session.ready", ready([7]));
  const a = rt.send(7, "one");
  last().receive("error", { refId: a, code: "rate_limited", message: "slow", retryAfterMs: 300 });
  await timers.advance(299);
  assert.equal(last().ofType("message.send").length, 1);
  await timers.advance(1);
  assert.equal(last().ofType("message.send").length, 2);
  last().receive("error", { refId: a, code: "validation_failed", message: "content is empty" });
  await flush();
  const [m] = rt.cache.messages(7);
  assert.deepEqual([m.status, m.error], ["failed", "content is empty"]);
  rt.retry(7, a);
  assert.equal(last().ofType("message.send").at(-1)!.id, a, "a retry keeps the id");
});

test("a send refused for good is reported with its code; rate limited retries are not", async () => {
  const { rt, last, timers } = await setup();
  const refused: { chatId: number; clientId: string; code: string }[] = [];
  rt.on("refused", (r) => refused.push(r));
  last().receive("session.ready", ready([7]));
  const a = rt.send(7, "news");
  last().receive("error", { refId: a, code: "rate_limited", message: "slow", retryAfterMs: 100 });
  await timers.advance(100);
  assert.deepEqual(refused, []);
  last().receive("error", { refId: a, code: "forbidden", message: "this channel is read-only: only its owner and admins post" });
  await flush();
  assert.deepEqual(refused, [{ chatId: 7, clientId: a, code: "forbidden" }]);
  assert.equal(rt.cache.pendingMessage(7, a)!.status, "failed");
});

test("after a dropped connection it reconnects with backoff, syncs what it missed and resends unanswered writes once", async () => {
  const { rt, sockets, last, timers, states } = await setup();
  last().receive("session.ready", ready([7], "1700000000000-0"));
  last().receive("message.new", newMessage(1).payload, newMessage(1).id);
  last().receive("notification.badge", { userEventId: "1700000000005-0", chatId: 7, unreadCount: 0, mentionCount: 0 }, "u:1");
  const clientId = rt.send(7, "while down");
  sockets[0].drop(1006);
  assert.equal(rt.state, "reconnecting");
  rt.send(7, "typed offline");
  await timers.advance(499);
  assert.equal(sockets.length, 1, "the first retry waits half a second at least");
  await timers.advance(1);
  assert.equal(sockets.length, 2);
  last().receive("session.ready", ready([7], "1700000000009-0"));
  assert.deepEqual(states, ["connecting", "open", "reconnecting", "open"]);
  const [sync] = last().ofType("sync.request");
  assert.deepEqual(sync.payload, { chats: { "7": "1-0" }, user: "1700000000005-0" });
  assert.deepEqual(last().ofType("message.send").map((f) => [f.id, f.payload.content]), [[clientId, "while down"]]);
  last().ack(clientId, { messageId: 104, seq: 4 });
  await flush();
  assert.deepEqual(last().ofType("message.send").map((f) => f.payload.content), ["while down", "typed offline"], "then the next of the chat's lane");

  // The sync's events overlap the live ones: each is applied once.
  const missed = [newMessage(1), newMessage(2), newMessage(3)];
  last().receive("sync.response", { chatId: 7, lastSeq: 3, tooLarge: false, hasMore: false, cursor: "3-0", source: "stream", events: missed, badge: { unreadCount: 2, mentionCount: 0 }, readReceipts: [{ userId: 2, seq: 3 }] });
  last().receive("message.new", newMessage(3).payload, newMessage(3).id);
  assert.deepEqual(rt.cache.messages(7).filter((m) => m.status === "sent").map((m) => m.seq), [1, 2, 3, 4]);
});

test("sync pages on hasMore and reloads a chat that missed too much", async () => {
  const { rt, last, frames } = await setup();
  rt.cache.load(7, [message(1)]);
  rt.cache.load(8, [{ ...message(1), chatId: 8 }]);
  const reloads: number[] = [];
  rt.on("reload", (id) => reloads.push(id));
  last().receive("session.ready", ready([7, 8]));
  const [sync] = last().ofType("sync.request");
  assert.deepEqual(sync.payload, { chats: { "7": 1, "8": 1 } }, "REST pages: sync after their newest message");
  last().receive("sync.response", { chatId: 7, hasMore: true, cursor: "2-0", events: [newMessage(2)], badge: { unreadCount: 1, mentionCount: 0 }, readReceipts: [] });
  last().receive("sync.response", { chatId: 8, tooLarge: true, hasMore: false, cursor: "1-0", events: [] });
  assert.equal(last().ofType("sync.request").length, 1, "follow-ups wait for the ack");
  last().ack(sync.id, { chats: 2 });
  await flush();
  assert.deepEqual(last().ofType("sync.request")[1].payload, { chats: { "7": "2-0" } });
  assert.deepEqual(reloads, [8]);
  assert.deepEqual(rt.cache.messages(8), []);
  const badge = frames.find((f) => f.frame.type === "notification.badge")!;
  assert.deepEqual([badge.live, badge.frame.payload], [false, { chatId: 7, unreadCount: 1, mentionCount: 0 }]);
});

test("a live eventSeq gap syncs that chat from the last event it holds", async () => {
  const { rt, last } = await setup();
  last().receive("session.ready", ready([7]));
  last().receive("message.new", newMessage(1).payload, newMessage(1).id);
  last().receive("message.new", newMessage(3).payload, newMessage(3).id);
  assert.deepEqual(last().ofType("sync.request").map((f) => f.payload), [{ chats: { "7": "1-0" } }]);
  assert.deepEqual(rt.cache.messages(7).map((m) => m.seq), [1]);
});

test("user events are deduplicated by frame id; replayed ones are not live", async () => {
  const { last, frames } = await setup();
  last().receive("session.ready", ready([], "5-0"));
  const toast = { userEventId: "6-0", id: "t1", groupId: "c7", title: "Bob", body: "hi", chatId: 7, messageId: 1, priority: "normal", count: 1, timestamp: "" };
  last().receive("notification.toast", toast, "u:6-0");
  last().receive("sync.user", { tooLarge: false, hasMore: false, cursor: "7-0", events: [{ type: "notification.toast", id: "u:6-0", timestamp: "", payload: toast }, { type: "notification.toast", id: "u:7-0", timestamp: "", payload: { ...toast, userEventId: "7-0" } }] });
  const toasts = frames.filter((f) => f.frame.type === "notification.toast");
  assert.deepEqual(toasts.map((t) => [t.frame.id, t.live]), [["u:6-0", true], ["u:7-0", false]]);
});

test("token.refresh gets a new token over REST and hands it to the connection", async () => {
  const { last, origin } = await setup();
  last().receive("session.ready", ready([]));
  last().receive("token.refresh", { expiresAt: "" });
  await flush();
  assert.equal(origin.calls.filter((c) => c.path === "/api/refresh").length, 1);
  assert.deepEqual(last().ofType("auth.refresh").map((f) => f.payload), [{ accessToken: "access-2" }]);
});

test("close 4401 refreshes then reconnects with the new token; a refused refresh signs out", async () => {
  const { rt, sockets, last, timers } = await setup();
  last().receive("session.ready", ready([]));
  last().drop(4401, "access token expired");
  await flush();
  await timers.advance(1000);
  assert.equal(sockets.length, 2);
  assert.equal(last().url, "wss://pool.test/ws?token=access-2");

  const refused = await setup({ "POST /api/refresh": () => [401, { error: { code: "unauthorized", message: "session revoked" } }] });
  refused.last().receive("session.ready", ready([]));
  refused.last().drop(4401, "session revoked");
  await flush();
  await refused.timers.advance(60_000);
  assert.equal(refused.rt.state, "signed-out");
  assert.equal(refused.sockets.length, 1);
  void rt;
});

test("close 4001 (replaced by a newer connection) does not reconnect", async () => {
  const { rt, sockets, last, timers } = await setup();
  last().receive("session.ready", ready([]));
  last().drop(4001);
  await timers.advance(60_000);
  assert.equal(rt.state, "replaced");
  assert.equal(sockets.length, 1);
});

test("a ping without an answer replaces the connection", async () => {
  const { sockets, last, timers } = await setup();
  last().receive("session.ready", ready([]));
  await timers.advance(30_000);
  const ping = last().ofType("ping");
  assert.equal(ping.length, 1);
  last().ack(ping[0].id);
  await flush();
  await timers.advance(30_000);
  assert.equal(last().ofType("ping").length, 2);
  await timers.advance(PING_TIMEOUT_MS);
  assert.equal(sockets[0].closedWith, 4000);
  await timers.advance(1000);
  assert.equal(sockets.length, 2);
});

test("the focused chat is told to every new connection", async () => {
  const { rt, last, sockets, timers } = await setup();
  last().receive("session.ready", ready([7]));
  rt.focus(7);
  assert.deepEqual(last().ofType("chat.focus").map((f) => f.payload), [{ chatId: 7 }]);
  sockets[0].drop(1001);
  await timers.advance(1000);
  last().receive("session.ready", ready([7]));
  assert.deepEqual(last().ofType("chat.focus").map((f) => f.payload), [{ chatId: 7 }]);
});

test("messages typed before a page reload are sent once the new page connects", async () => {
  const storage = new Map<string, string>();
  const kv = { getItem: (k: string) => storage.get(k) ?? null, setItem: (k: string, v: string) => void storage.set(k, v), removeItem: (k: string) => void storage.delete(k) };
  const before = new MessageCache(kv);
  before.addPending(7, "typed-1", 1, "sent after reload", null, []);
  before.save();

  const cache = new MessageCache(kv);
  cache.restore();
  const timers = new FakeTimers();
  const api = signedInApi(fakeOrigin({}).fetch, timers);
  const sockets: FakeSocket[] = [];
  const rt = new Realtime({ api, url: "wss://pool.test/ws", cache, timers, socket: (u) => (sockets.push(new FakeSocket(u)), sockets.at(-1)!) });
  rt.start();
  await flush();
  sockets[0].receive("session.ready", ready([7]));
  assert.deepEqual(sockets[0].ofType("message.send").map((f) => [f.id, f.payload.content]), [["typed-1", "sent after reload"]]);
  sockets[0].ack("typed-1", { messageId: 9, seq: 4 });
  await flush();
  assert.deepEqual(rt.cache.messages(7).map((m) => [m.seq, m.status]), [[4, "sent"]]);
});

test("connections refused before session.ready twice in a row check the session with a refresh", async () => {
  const { rt, sockets, timers, origin } = await setup({
    "POST /api/refresh": () => [401, { error: { code: "unauthorized", message: "session revoked; sign in again" } }],
  });
  sockets[0].drop(1006);
  await timers.advance(1000);
  assert.equal(origin.calls.filter((c) => c.path === "/api/refresh").length, 0, "one failure is just a retry");
  sockets[1].drop(1006);
  await flush();
  assert.equal(origin.calls.filter((c) => c.path === "/api/refresh").length, 1);
  assert.equal(rt.state, "signed-out");
  await timers.advance(60_000);
  assert.equal(sockets.length, 2, "a signed-out client stops reconnecting");
});

test("sends of one chat go one at a time in typing order, also when one is rate limited", async () => {
  const { rt, last, timers } = await setup();
  last().receive("session.ready", ready([7, 8]));
  const [a, b, c] = ["one", "two", "three"].map((text) => rt.send(7, text));
  const other = rt.send(8, "elsewhere");
  const sent = () => last().ofType("message.send").map((f) => f.payload.content);
  assert.deepEqual(sent(), ["one", "elsewhere"], "another chat's lane is independent");
  last().ack(a, { messageId: 1, seq: 1 });
  await flush();
  assert.deepEqual(sent(), ["one", "elsewhere", "two"]);
  last().receive("error", { refId: b, code: "rate_limited", message: "slow", retryAfterMs: 200 });
  await timers.advance(200);
  assert.deepEqual(sent(), ["one", "elsewhere", "two", "two"], "the refused send goes again before the next");
  last().ack(b, { messageId: 2, seq: 2 });
  await flush();
  assert.deepEqual(sent().slice(-1), ["three"]);
  last().receive("error", { refId: c, code: "forbidden", message: "no" });
  last().ack(other, { messageId: 3, seq: 1 });
  await flush();
  assert.deepEqual(rt.cache.messages(7).map((m) => [m.content, m.status]), [["one", "sent"], ["two", "sent"], ["three", "failed"]]);
  rt.send(7, "four");
  assert.deepEqual(sent().slice(-1), ["four"], "a failed send does not block the lane");
});

test("a chat loaded over REST while reconnecting catches up by sync and then takes live events", async () => {
  const { rt, sockets, last, timers } = await setup();
  last().receive("session.ready", ready([7]));
  for (const n of [1, 2, 3]) last().receive("message.new", newMessage(n).payload, newMessage(n).id);
  sockets[0].drop(1006);
  rt.cache.load(7, Array.from({ length: 10 }, (_, i) => message(i + 1)));
  await timers.advance(1000);
  last().receive("session.ready", ready([7]));
  const [sync] = last().ofType("sync.request");
  assert.deepEqual(sync.payload, { chats: { "7": "3-0" }, user: "0-0" });
  const missed = [4, 5, 6, 7, 8, 9, 10, 11].map((n) => newMessage(n));
  last().receive("sync.response", { chatId: 7, hasMore: false, cursor: "11-0", events: missed, badge: null, readReceipts: [] });
  last().ack(sync.id, { chats: 1 });
  await flush();
  last().receive("message.new", newMessage(12).payload, newMessage(12).id);
  assert.deepEqual(rt.cache.messages(7).map((m) => m.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.equal(last().ofType("sync.request").length, 1, "no sync loop");
});

test("follow-up pages of every chat go in one request; a refused sync is retried, and not after stop()", async () => {
  const { rt, last, timers } = await setup();
  for (let id = 1; id <= 30; id++) rt.cache.load(id, [{ ...message(1), chatId: id }]);
  last().receive("session.ready", ready(Array.from({ length: 30 }, (_, i) => i + 1)));
  const [first] = last().ofType("sync.request");
  for (let id = 1; id <= 30; id++) last().receive("sync.response", { chatId: id, hasMore: true, cursor: "1-0", events: [] });
  last().ack(first.id, { chats: 30 });
  await flush();
  const requests = last().ofType("sync.request");
  assert.equal(requests.length, 2);
  assert.equal(Object.keys(requests[1].payload.chats).length, 30);

  last().receive("error", { refId: requests[1].id, code: "unavailable", message: "busy" });
  await flush();
  await timers.advance(1000);
  assert.equal(last().ofType("sync.request").length, 3, "retried after a backoff");
  last().receive("error", { refId: last().ofType("sync.request")[2].id, code: "internal", message: "oops" });
  await flush();
  rt.stop();
  await timers.advance(60_000);
  assert.equal(last().ofType("sync.request").length, 3, "stop() cancels the retry");
});

test("a frame over maxFrameBytes is refused locally; a 1009 close fails the write instead of resending it", async () => {
  const { rt, sockets, last, timers } = await setup();
  last().receive("session.ready", ready([7], "0-0", { maxFrameBytes: 1000 }));
  const big = rt.send(7, "x".repeat(2000));
  await flush();
  assert.equal(last().ofType("message.send").length, 0);
  assert.equal(rt.cache.pendingMessage(7, big)!.status, "failed");

  const ok = rt.send(7, "y".repeat(500));
  assert.deepEqual(last().ofType("message.send").map((f) => f.id), [ok]);
  sockets[0].drop(1009);
  await flush();
  assert.equal(rt.cache.pendingMessage(7, ok)!.status, "failed");
  await timers.advance(1000);
  last().receive("session.ready", ready([7]));
  assert.equal(last().ofType("message.send").length, 0, "not resent after the reconnect");
});

test("the backoff starts over only after a connection stayed up", async () => {
  const { sockets, last, timers } = await setup();
  const delays: number[] = [];
  for (let i = 0; i < 3; i++) {
    last().receive("session.ready", ready([]));
    const before = timers.now;
    last().drop(1006);
    const count = sockets.length;
    while (sockets.length === count) await timers.advance(100);
    delays.push(timers.now - before);
  }
  assert.deepEqual(delays, [500, 1000, 2000], "connections dying at once back off");
  last().receive("session.ready", ready([]));
  await timers.advance(30_000);
  const before = timers.now;
  last().drop(1006);
  const count = sockets.length;
  while (sockets.length === count) await timers.advance(100);
  assert.equal(timers.now - before, 500, "a stable connection resets the backoff");
});

test("a user stream that lost the cursor asks for a reload; replayed badges are not passed on", async () => {
  const { rt, last, frames, sockets, timers } = await setup();
  let stale = 0;
  rt.on("stale", () => stale++);
  last().receive("session.ready", ready([], "5-0"));
  sockets[0].drop(1006);
  await timers.advance(1000);
  last().receive("session.ready", ready([], "9-0"));
  assert.deepEqual(last().ofType("sync.request")[0].payload, { user: "5-0" });
  last().receive("sync.user", { tooLarge: false, hasMore: false, cursor: "7-0", events: [
    { type: "notification.badge", id: "u:6", timestamp: "", payload: { userEventId: "6-0", chatId: 7, unreadCount: 0, mentionCount: 0 } },
    { type: "membership.changed", id: "u:7", timestamp: "", payload: { userEventId: "7-0", chatId: 8, userId: 1, action: "added" } },
  ] });
  assert.deepEqual(frames.map((f) => f.frame.type), ["membership.changed"]);
  last().receive("sync.user", { tooLarge: true, hasMore: false, cursor: "7-0", events: [] });
  assert.equal(stale, 1);
});
