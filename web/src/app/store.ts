// App state shared by the views: who I am, the workspace's users, my chats
// with their badges, presence, typing and read receipts, the open chat and
// the connection state. Views subscribe to topics and re-render what they
// show; the wiring in main.ts feeds the store from REST and live frames.
import type { Chat, ChatMember, PresenceStatus, RoleChange, User } from "../client/types.js";

export interface ChatEntry extends Chat {
  unreadCount: number;
  mentionCount: number;
  /** The name shown: the channel/group name, or the other member's name. */
  title: string;
  /** For single chats: the other member. */
  otherUserId: number | null;
  pinned: boolean;
}

/** "replaced": a sixth connection of the account closed this one (4001); it does not come back by itself. */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline" | "replaced";

export type Topic =
  | "chats" // list, badges, totals
  | "current" // the open chat changed
  | "presence"
  | "typing"
  | "receipts"
  | "members"
  | "connection"
  | "users";

/** `members` with the roles a `chat.updated` names applied (members not listed keep theirs). */
export function withRoles(members: readonly ChatMember[], roles: readonly RoleChange[]): ChatMember[] {
  return members.map((m) => {
    const changed = roles.find((r) => r.userId === m.userId);
    return changed ? { ...m, role: changed.role } : m;
  });
}

export class Store {
  me: User;
  users = new Map<number, User>();
  chats = new Map<number, ChatEntry>();
  unreadTotal = 0;
  mentionTotal = 0;
  currentChatId: number | null = null;
  presence = new Map<number, PresenceStatus>();
  myStatus: PresenceStatus = "online";
  /** chatId -> userId -> {name, until (ms)} */
  typing = new Map<number, Map<number, { name: string; until: number }>>();
  /** chatId -> userId -> last read seq (other members) */
  receipts = new Map<number, Map<number, number>>();
  members = new Map<number, ChatMember[]>();
  connection: { state: ConnectionState; instance: string | null } = { state: "connecting", instance: null };

  private listeners = new Map<Topic, Set<() => void>>();

  constructor(me: User) {
    this.me = me;
  }

  on(topic: Topic, fn: () => void): () => void {
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  emit(topic: Topic): void {
    for (const fn of [...(this.listeners.get(topic) ?? [])]) fn();
  }

  /** Called when a user id is not in the directory (someone who joined since it loaded). */
  onUnknownUser: (id: number) => void = () => {};

  userName(id: number): string {
    if (id === this.me.id) return this.me.fullname;
    const user = this.users.get(id);
    if (!user) {
      this.onUnknownUser(id);
      return "…";
    }
    return user.fullname;
  }

  setUsers(users: User[]): void {
    this.users = new Map(users.map((u) => [u.id, u]));
    for (const c of this.chats.values()) c.title = this.titleOf(c);
    this.emit("users");
    this.emit("chats");
  }

  titleOf(c: { type: Chat["type"]; name: string | null; id: number }, otherUserId?: number | null): string {
    if (c.type === "single") {
      const other = otherUserId ?? this.chats.get(c.id)?.otherUserId ?? null;
      return other !== null ? this.userName(other) : "Direct message";
    }
    if (c.name) return c.type.endsWith("channel") ? `#${c.name}` : c.name;
    if (c.type === "group") {
      const names = (this.members.get(c.id) ?? []).filter((m) => m.userId !== this.me.id).map((m) => m.fullname);
      return names.length ? names.join(", ") : "Group";
    }
    return "chat";
  }

  /** Replaces the chat list (GET /api/chat), keeping known extras. */
  setChats(list: Chat[]): void {
    const next = new Map<number, ChatEntry>();
    for (const c of list) next.set(c.id, this.entryOf(c));
    this.chats = next;
    this.recountTotals();
    this.emit("chats");
  }

  upsertChat(c: Chat): ChatEntry {
    const entry = this.entryOf(c);
    this.chats.set(c.id, entry);
    this.recountTotals();
    this.emit("chats");
    return entry;
  }

  private entryOf(c: Chat): ChatEntry {
    const old = this.chats.get(c.id);
    const entry: ChatEntry = {
      ...c,
      unreadCount: c.unreadCount ?? old?.unreadCount ?? 0,
      mentionCount: c.mentionCount ?? old?.mentionCount ?? 0,
      otherUserId: old?.otherUserId ?? null,
      pinned: old?.pinned ?? false,
      title: "",
    };
    entry.title = this.titleOf(entry, entry.otherUserId);
    return entry;
  }

  /**
   * A `chat.updated` event: the chat's settings and owner after the change
   * and the members whose role changed. Only what the event is about is
   * taken (not its `lastSeq`, `memberCount` or `updatedAt`, which a
   * replayed older event would set back).
   */
  applyChatUpdate(chat: Chat, roles: readonly RoleChange[]): void {
    const held = this.chats.get(chat.id);
    if (!held) return;
    const { name, description, readOnly, ownerId } = chat;
    this.upsertChat({ ...held, name, description, readOnly, ownerId });
    const members = this.members.get(chat.id);
    if (members && roles.length) {
      this.members.set(chat.id, withRoles(members, roles));
      this.emit("members");
    }
  }

  removeChat(id: number): void {
    this.chats.delete(id);
    this.recountTotals();
    this.emit("chats");
  }

  setMembers(chatId: number, members: ChatMember[]): void {
    this.members.set(chatId, members);
    const chat = this.chats.get(chatId);
    if (chat) {
      if (chat.type === "single") chat.otherUserId = members.find((m) => m.userId !== this.me.id)?.userId ?? null;
      chat.title = this.titleOf(chat, chat.otherUserId);
      this.emit("chats");
    }
    const receipts = this.receipts.get(chatId) ?? new Map<number, number>();
    for (const m of members) {
      if (m.userId === this.me.id) continue;
      receipts.set(m.userId, Math.max(receipts.get(m.userId) ?? 0, m.lastReadSeq));
    }
    this.receipts.set(chatId, receipts);
    this.emit("members");
    this.emit("receipts");
  }

  setBadge(chatId: number, unread: number, mentions: number): void {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    if (chat.unreadCount === unread && chat.mentionCount === mentions) return;
    chat.unreadCount = unread;
    chat.mentionCount = mentions;
    this.recountTotals();
    this.emit("chats");
  }

  setTotals(unread: number, mentions: number): void {
    this.unreadTotal = unread;
    this.mentionTotal = mentions;
    this.emit("chats");
  }

  recountTotals(): void {
    let unread = 0;
    let mentions = 0;
    for (const c of this.chats.values()) {
      unread += c.unreadCount;
      mentions += c.mentionCount;
    }
    this.unreadTotal = unread;
    this.mentionTotal = mentions;
  }

  setReceipt(chatId: number, userId: number, seq: number): void {
    if (userId === this.me.id) return;
    const map = this.receipts.get(chatId) ?? new Map<number, number>();
    if ((map.get(userId) ?? 0) >= seq) return;
    map.set(userId, seq);
    this.receipts.set(chatId, map);
    this.emit("receipts");
  }

  setTyping(chatId: number, userId: number, name: string, active: boolean): void {
    if (userId === this.me.id) return;
    const map = this.typing.get(chatId) ?? new Map<number, { name: string; until: number }>();
    if (active) map.set(userId, { name, until: Date.now() + 6000 });
    else map.delete(userId);
    this.typing.set(chatId, map);
    this.emit("typing");
  }

  /** Names typing in a chat now (entries expire after 6 s without renewal). */
  typingIn(chatId: number): string[] {
    const map = this.typing.get(chatId);
    if (!map) return [];
    const now = Date.now();
    const names: string[] = [];
    for (const [userId, t] of map) {
      if (t.until < now) map.delete(userId);
      else names.push(t.name);
    }
    return names;
  }

  setPinned(chatId: number, pinned: boolean): void {
    const chat = this.chats.get(chatId);
    if (!chat || chat.pinned === pinned) return;
    chat.pinned = pinned;
    this.emit("chats");
  }

  /** A new message moves its chat to the top of the list. */
  bump(chatId: number, at: string): void {
    const chat = this.chats.get(chatId);
    if (!chat || Date.parse(chat.updatedAt) >= Date.parse(at)) return;
    chat.updatedAt = at;
    this.emit("chats");
  }

  setPresence(userId: number, status: PresenceStatus): void {
    if (this.presence.get(userId) === status) return;
    this.presence.set(userId, status);
    if (userId === this.me.id) this.myStatus = status;
    this.emit("presence");
  }

  setConnection(state: ConnectionState, instance: string | null): void {
    this.connection = { state, instance };
    this.emit("connection");
  }

  /** Chats in sidebar order: pinned first, then most recently updated. */
  orderedChats(): ChatEntry[] {
    return [...this.chats.values()].sort((a, b) => {
      if (a.pinned !== b.pinned) return a.pinned ? -1 : 1;
      return b.updatedAt.localeCompare(a.updatedAt) || b.id - a.id;
    });
  }
}
