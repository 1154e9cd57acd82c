import assert from "node:assert/strict";
import { test } from "node:test";
import { MessageCache, PERSISTED, compareEventIds, type KeyValueStorage } from "../src/client/cache.js";
import type { Frame, Message } from "../src/client/types.js";

function msg(seq: number, extra: Partial<Message> = {}): Message {
  return { id: 100 + seq, chatId: 7, seq, senderId: 2, content: `m${seq}`, clientId: `c${seq}`, replyTo: null, mentions: [], createdAt: "", editedAt: null, deletedAt: null, ...extra };
}
function event(type: string, eventId: string, eventSeq: number, payload: any): Frame {
  return { type, id: `c7:${eventId}`, timestamp: "", payload: { chatId: 7, eventId, eventSeq, ...payload } };
}
const newMsg = (seq: number, eventSeq = seq, extra: Partial<Message> = {}) => event("message.new", `${seq}-0`, eventSeq, { message: msg(seq, extra) });

class MapStorage implements KeyValueStorage {
  map = new Map<string, string>();
  getItem(k: string) { return this.map.get(k) ?? null; }
  setItem(k: string, v: string) { this.map.set(k, v); }
  removeItem(k: string) { this.map.delete(k); }
}

test("event ids order by seq, then by sub-number", () => {
  assert.ok(compareEventIds("9-0", "10-0") < 0);
  assert.ok(compareEventIds("10-2", "10-10") < 0);
  assert.equal(compareEventIds("4-1", "4-1"), 0);
});

test("messages are shown by seq, whatever order they arrive in; duplicates are dropped", () => {
  const c = new MessageCache();
  c.load(7, [msg(2), msg(1)]);
  c.trust(7);
  assert.equal(c.apply(newMsg(3, 3)), "applied");
  assert.equal(c.apply(newMsg(3, 3)), "duplicate", "the same event again");
  assert.equal(c.apply(newMsg(2, 2)), "duplicate", "an event before the cursor");
  assert.deepEqual(c.messages(7).map((m) => m.seq), [1, 2, 3]);
});

test("an eventSeq jump is a gap and is not applied", () => {
  const c = new MessageCache();
  assert.equal(c.apply(newMsg(1, 1)), "applied");
  assert.equal(c.apply(newMsg(3, 3)), "gap");
  assert.deepEqual(c.messages(7).map((m) => m.seq), [1]);
  assert.equal(c.cursor(7), "1-0", "sync from the last applied event");
  assert.equal(c.apply(newMsg(2, 2)), "applied");
  assert.equal(c.apply(newMsg(3, 3)), "applied");
});

test("a chat.updated is a chat event: it takes its eventSeq, so the next message is no gap", () => {
  const c = new MessageCache();
  assert.equal(c.apply(newMsg(1, 1)), "applied");
  const changed = event("chat.updated", "1-1", 2, { userId: 1, chat: { id: 7, readOnly: true }, roles: [] });
  assert.equal(c.apply(changed), "applied");
  assert.equal(c.cursor(7), "1-1", "sync from after the change");
  assert.equal(c.apply(changed), "duplicate");
  assert.equal(c.apply(newMsg(2, 3)), "applied");
  assert.deepEqual(c.messages(7).map((m) => m.seq), [1, 2], "the messages are untouched");
  assert.equal(c.apply(event("chat.updated", "2-1", 5, { roles: [] })), "gap", "event 4 is missing");
});

test("a missed message is a gap even without eventSeq", () => {
  const c = new MessageCache();
  c.load(7, [msg(1)]);
  const frame = newMsg(3);
  delete frame.payload.eventSeq;
  assert.equal(c.apply(frame), "gap");
});

test("an optimistic send is replaced by its own message.new, and the later ack changes nothing", () => {
  const c = new MessageCache();
  c.load(7, [msg(1)]);
  c.addPending(7, "mine", 2, "hello", null, []);
  assert.deepEqual(c.messages(7).map((m) => [m.content, m.status]), [["m1", "sent"], ["hello", "sending"]]);
  c.apply(newMsg(2, 2, { content: "hello", clientId: "mine" }));
  c.confirm(7, "mine", 102, 2);
  assert.deepEqual(c.messages(7).map((m) => [m.seq, m.content, m.status]), [[1, "m1", "sent"], [2, "hello", "sent"]]);
});

test("the ack confirms a pending send in place; a failure keeps it with its reason", () => {
  const c = new MessageCache();
  c.addPending(7, "a", 1, "first", null, []);
  c.addPending(7, "b", 1, "second", null, []);
  c.confirm(7, "a", 50, 9);
  c.setPendingStatus(7, "b", "failed", "rate limited");
  const [sent, failed] = c.messages(7);
  assert.deepEqual([sent.id, sent.seq, sent.status], [50, 9, "sent"]);
  assert.deepEqual([failed.status, failed.error], ["failed", "rate limited"]);
  assert.deepEqual(c.unsent(), [], "failed sends wait for the user's retry");
});

test("edits, deletes and reactions change the cached message", () => {
  const c = new MessageCache();
  c.load(7, [msg(1)]);
  c.trust(7);
  c.apply(event("message.updated", "1-1", 2, { message: { ...msg(1), content: "edited", editedAt: "t" } }));
  c.apply(event("message.reaction", "1-2", 3, { messageId: 101, reactions: [{ emoji: "👍", userIds: [2], count: 1 }] }));
  assert.equal(c.messages(7)[0].content, "edited");
  assert.equal(c.messages(7)[0].reactions![0].count, 1);
  c.apply(event("message.deleted", "1-3", 4, { messageId: 101, seq: 1 }));
  assert.equal(c.messages(7)[0].content, "");
  assert.ok(c.messages(7)[0].deletedAt);
  assert.equal(c.messages(7)[0].reactions![0].emoji, "👍", "an edit keeps the reactions");
});

test("an optimistic change is undone when the server refuses it", () => {
  const c = new MessageCache();
  c.load(7, [msg(1)]);
  const undo = c.patch(7, 101, () => ({ content: "draft" }));
  assert.equal(c.messages(7)[0].content, "draft");
  undo();
  assert.equal(c.messages(7)[0].content, "m1");
});

test("the newest messages, the cursor and unsent messages survive a reload", () => {
  const storage = new MapStorage();
  const c = new MessageCache(storage, "k");
  c.load(7, Array.from({ length: 80 }, (_, i) => msg(i + 1)));
  c.trust(7);
  c.apply(newMsg(81, 81));
  c.addPending(7, "queued", 1, "typed offline", null, []);
  c.addPending(7, "broken", 1, "refused", null, []);
  c.setPendingStatus(7, "broken", "failed");
  c.save();

  const again = new MessageCache(storage, "k");
  again.restore();
  const seqs = again.messages(7).filter((m) => m.status === "sent").map((m) => m.seq);
  assert.equal(seqs.length, PERSISTED);
  assert.equal(seqs.at(-1), 81);
  assert.equal(again.cursor(7), "81-0");
  assert.deepEqual(again.unsent().map((m) => m.content), ["typed offline"]);
  assert.equal(again.apply(newMsg(81, 81)), "duplicate");
});

test("a corrupt saved cache is discarded", () => {
  const storage = new MapStorage();
  storage.setItem("k", "{not json");
  const c = new MessageCache(storage, "k");
  c.restore();
  assert.deepEqual(c.chatIds(), []);
  assert.equal(storage.getItem("k"), null);
});

test("a live event is a gap until a sync vouches for what the cache holds", async () => {
  const c = new MessageCache();
  c.load(7, [msg(1), msg(2)]);
  assert.equal(c.apply(newMsg(3, 3)), "gap", "REST pages say nothing about events");
  assert.equal(c.cursor(7), 2, "sync from the newest message the page had");
  assert.equal(c.apply(newMsg(3, 3), "sync"), "applied");
  c.trust(7);
  assert.equal(c.apply(newMsg(4, 4)), "applied");
  c.distrustAll();
  assert.equal(c.apply(newMsg(5, 6)), "gap", "a known eventSeq still shows the jump");
  assert.equal(c.apply(newMsg(5, 5)), "applied", "and the next one in line is fine");
});

test("a REST page does not move the cursor past events the cache has not seen", () => {
  const c = new MessageCache();
  c.trust(7);
  for (const n of [1, 2, 3]) c.apply(newMsg(n, n));
  c.load(7, Array.from({ length: 10 }, (_, i) => msg(i + 1)));
  assert.equal(c.cursor(7), "3-0");
  assert.equal(c.apply(newMsg(4, 4), "sync"), "applied");
  assert.equal(c.apply(newMsg(11, 11), "sync"), "gap", "eventSeq 5-10 are still missing");
});

test("a REST page with a hole before it replaces the older cached messages", () => {
  const c = new MessageCache();
  c.load(7, Array.from({ length: 50 }, (_, i) => msg(i + 1)));
  c.apply(newMsg(50, 50), "sync");
  c.load(7, Array.from({ length: 50 }, (_, i) => msg(i + 151)));
  assert.deepEqual([c.messages(7)[0].seq, c.messages(7).length], [151, 50]);
  assert.equal(c.cursor(7), 200, "the next sync starts after the page");
  // An older page that joins is merged.
  c.load(7, Array.from({ length: 50 }, (_, i) => msg(i + 101)));
  assert.deepEqual([c.messages(7)[0].seq, c.messages(7).length], [101, 100]);
});

test("a REST page answered after a live edit does not undo it", () => {
  const c = new MessageCache();
  c.trust(7);
  c.apply(newMsg(1, 1));
  c.apply(event("message.updated", "1-1", 2, { message: { ...msg(1), content: "edited", editedAt: "2026-12-07T10:00:00Z" } }));
  c.load(7, [msg(1)]);
  assert.equal(c.messages(7)[0].content, "edited");
});

test("after a reload the last eventSeq still reveals events missed before a live one", () => {
  const storage = new MapStorage();
  const c = new MessageCache(storage, "k");
  c.trust(7);
  for (const n of [1, 2, 3]) c.apply(newMsg(n, n));
  c.save();
  const again = new MessageCache(storage, "k");
  again.restore();
  const reaction = event("message.reaction", "5-1", 6, { messageId: 105, reactions: [] });
  assert.equal(again.apply(reaction), "gap");
  assert.equal(again.cursor(7), "3-0");
});

test("undoing a refused change keeps what the server said meanwhile", () => {
  const c = new MessageCache();
  c.load(7, [msg(1)]);
  const undo = c.patch(7, 101, () => ({ reactions: [{ emoji: "👍", userIds: [1], count: 1 }] }));
  c.trust(7);
  c.apply(event("message.updated", "1-1", 1, { message: { ...msg(1), content: "edited by the server", editedAt: "t" } }));
  undo();
  assert.equal(c.messages(7)[0].content, "edited by the server");
  assert.deepEqual(c.messages(7)[0].reactions, [], "the reactions the server never confirmed go back");
  const undoEdit = c.patch(7, 101, () => ({ content: "mine" }));
  undoEdit();
  assert.equal(c.messages(7)[0].content, "edited by the server");
});
