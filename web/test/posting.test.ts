import assert from "node:assert/strict";
import { test } from "node:test";
import { canPost, gatePosting, postingNotice, READ_ONLY_NOTICE, roleOf } from "../src/app/posting.js";
import { Store, withRoles } from "../src/app/store.js";
import type { Chat, ChatMember, Role } from "../src/client/types.js";

const ME = 2;

function chat(extra: Partial<Chat> = {}): Chat {
  return {
    id: 7,
    workspaceId: 1,
    type: "public_channel",
    name: "news",
    description: "",
    ownerId: 1,
    readOnly: false,
    lastSeq: 0,
    memberCount: 2,
    createdAt: "2026-11-23T14:00:00Z",
    updatedAt: "2026-11-23T14:00:00Z",
    ...extra,
  };
}

function members(myRole: Role, ownerId = 1): ChatMember[] {
  const m = (userId: number, role: Role): ChatMember => ({ userId, fullname: `u${userId}`, role, lastReadSeq: 0, joinedAt: "" });
  return [m(ownerId, "owner"), m(ME, myRole)];
}

test("outside read-only channels everyone may post, whatever the role", () => {
  for (const role of ["owner", "admin", "member", undefined] as const) {
    assert.equal(canPost(chat(), ME, role), true, `role ${role}`);
    assert.equal(postingNotice(chat(), ME, role), null);
  }
  assert.equal(canPost(undefined, ME, "member"), true, "an unknown chat is the server's to refuse");
});

test("in a read-only channel only the owner and admins may post", () => {
  const ro = chat({ readOnly: true });
  assert.equal(canPost(ro, ME, "member"), false);
  assert.equal(postingNotice(ro, ME, "member"), READ_ONLY_NOTICE);
  assert.equal(canPost(ro, ME, "admin"), true);
  assert.equal(canPost(ro, ME, "owner"), true);
  assert.equal(canPost(chat({ readOnly: true, ownerId: ME }), ME, "member"), true, "ownerId makes me the owner before the member list says so");
});

test("a role not known yet (member list loading) does not block: the server decides", () => {
  assert.equal(canPost(chat({ readOnly: true }), ME, undefined), true);
});

test("roleOf finds my role in the member list", () => {
  assert.equal(roleOf(members("admin"), ME), "admin");
  assert.equal(roleOf(members("member"), 99), undefined);
  assert.equal(roleOf(undefined, ME), undefined);
});

test("the composer follows the flag and my role as the store reloads them", () => {
  const store = new Store({ id: ME, fullname: "Bob", email: "bob@acme.test", workspaceId: 1, role: "member", active: true });
  const seen: (string | null)[] = [];
  const box = {
    setBlocked(notice: string | null) {
      seen.push(notice);
    },
  };
  store.setChats([chat({ readOnly: true })]);
  const off = gatePosting(store, 7, box);
  assert.deepEqual(seen, [null], "role unknown: not blocked yet");
  store.setMembers(7, members("member"));
  assert.equal(seen.at(-1), READ_ONLY_NOTICE, "a plain member of a read-only channel");
  store.upsertChat(chat({ readOnly: false })); // PATCH readOnly: false, seen on reload
  assert.equal(seen.at(-1), null, "the flag lifted");
  store.upsertChat(chat({ readOnly: true }));
  assert.equal(seen.at(-1), READ_ONLY_NOTICE, "the flag set again");
  store.upsertChat(chat({ readOnly: true, ownerId: ME })); // ownership transferred to me
  assert.equal(seen.at(-1), null, "the new owner posts");
  store.setMembers(7, members("admin", 3)); // and away again: the previous owner is an admin
  store.upsertChat(chat({ readOnly: true, ownerId: 3 }));
  assert.equal(seen.at(-1), null, "an admin posts");
  off();
  store.setMembers(7, members("member", 3));
  assert.equal(seen.at(-1), null, "nothing after unsubscribing");
});

test("a chat.updated changes the chat and the named roles, and the composer follows", () => {
  const store = new Store({ id: ME, fullname: "Bob", email: "bob@acme.test", workspaceId: 1, role: "member", active: true });
  const seen: (string | null)[] = [];
  store.setChats([chat({ readOnly: false, ownerId: 3, lastSeq: 9 })]);
  store.setMembers(7, members("member", 3));
  const off = gatePosting(store, 7, { setBlocked: (n) => void seen.push(n) });
  store.applyChatUpdate(chat({ readOnly: true, ownerId: 3, name: "news-ro", lastSeq: 4 }), []);
  assert.equal(seen.at(-1), READ_ONLY_NOTICE, "made read-only live");
  assert.equal(store.chats.get(7)!.title, "#news-ro", "renamed");
  assert.equal(store.chats.get(7)!.lastSeq, 9, "an event's older lastSeq is not taken");
  store.applyChatUpdate(chat({ readOnly: true, ownerId: ME }), [
    { userId: ME, role: "owner" },
    { userId: 3, role: "admin" },
  ]);
  assert.equal(seen.at(-1), null, "handed to me");
  assert.deepEqual(
    store.members.get(7)!.map((m) => [m.userId, m.role]),
    [
      [3, "admin"],
      [ME, "owner"],
    ],
  );
  store.applyChatUpdate(chat({ id: 99 } as Partial<Chat>), []);
  assert.equal(store.chats.has(99), false, "a chat not in the list is not added");
  off();
});

test("withRoles changes only the members it names", () => {
  const list = members("member", 3);
  const after = withRoles(list, [{ userId: 3, role: "owner" }]);
  assert.deepEqual(
    after.map((m) => m.role),
    list.map((m) => (m.userId === 3 ? "owner" : m.role)),
  );
  assert.notEqual(after, list, "a new list: the store's old one is not mutated");
});
