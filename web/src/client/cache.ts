// The local cache of recent messages per chat (seed 002 §6.1-6.4), the
// single place where server events and optimistic changes meet.
//
// * Order: confirmed messages by `seq`, then the user's unconfirmed sends
//   in the order they were made; never by client clock.
// * Dedupe: chat events carry `eventId` "<seq>-<n>", totally ordered in
//   commit order; an event at or before the chat's cursor was applied
//   already and is dropped (live and sync deliveries overlap). Only events
//   move the cursor: a REST page is a snapshot of messages, not of events.
// * Gaps: `eventSeq` numbers a chat's events 1, 2, 3, … without holes, so
//   a live event more than one ahead of the last one seen means one was
//   missed: `apply` answers "gap" and the caller syncs from the cursor.
//   While the last eventSeq is unknown (after a REST load or a restore)
//   a live event is trusted only once a sync of the chat answered on this
//   connection ("trusted"); before that it is a gap too.
// * Holes: a REST page that does not join the cached messages (newer than
//   the newest cached one + 1) replaces them: a cache never shows a run of
//   messages with a silent hole before it.
// * Optimistic sends sit in `pending` under their client id (the frame id)
//   until the ack, or until their own `message.new` (whichever comes first)
//   replaces them; edits, deletes and reactions change the message at once
//   and are undone if the server refuses them.
// * Persistence: the newest PERSISTED messages per chat, the cursors and
//   the unsent messages are written to a Storage (localStorage), so a
//   reload shows the recent past at once and sends what was typed offline.
import type { Frame, Message, Reaction } from "./types.js";

export type SendStatus = "sending" | "sent" | "failed";

export interface CachedMessage extends Message {
  status: SendStatus;
  /** Why a send failed (status "failed"). */
  error?: string;
}

/** What `apply` did with a chat event. */
export type ApplyResult = "applied" | "duplicate" | "gap" | "ignored";

export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Messages kept per chat in memory, and persisted per chat. */
export const KEPT = 1000;
export const PERSISTED = 50;

interface ChatCache {
  bySeq: Map<number, CachedMessage>;
  pending: Map<string, CachedMessage>;
  /** The last event applied ("<seq>-<n>"), or null when unknown. */
  cursor: string | null;
  lastEventSeq: number | null;
  /** A sync answered for this chat on the current connection. */
  trusted: boolean;
}

/**
 * Orders "<a>-<b>" ids: chat event ids ("<seq>-<n>") and user-event
 * stream ids ("<ms>-<n>"; milliseconds fit a double exactly).
 */
export function compareEventIds(a: string, b: string): number {
  const [as, an] = a.split("-").map(Number);
  const [bs, bn] = b.split("-").map(Number);
  return as !== bs ? as - bs : an - bn;
}

/**
 * The frames that are chat events: numbered in their chat's `eventId` and
 * `eventSeq`, replayed by sync (docs/protocol.md, Server frames).
 */
export function isChatEvent(type: string): boolean {
  return type.startsWith("message.") || type === "chat.updated";
}

export class MessageCache {
  private chats = new Map<number, ChatCache>();

  constructor(
    private readonly storage?: KeyValueStorage,
    private readonly storageKey = "fechatter.cache",
  ) {}

  // --- reading ------------------------------------------------------------

  has(chatId: number): boolean {
    return this.chats.has(chatId);
  }

  chatIds(): number[] {
    return [...this.chats.keys()];
  }

  messages(chatId: number): CachedMessage[] {
    const c = this.chats.get(chatId);
    if (!c) return [];
    const confirmed = [...c.bySeq.values()].sort((a, b) => a.seq - b.seq);
    return [...confirmed, ...c.pending.values()];
  }

  lastSeq(chatId: number): number {
    const c = this.chats.get(chatId);
    return c && c.bySeq.size ? Math.max(...c.bySeq.keys()) : 0;
  }

  /** The sync cursor of a chat: the last event id, else the last seq. */
  cursor(chatId: number): string | number {
    return this.chats.get(chatId)?.cursor ?? this.lastSeq(chatId);
  }

  /** Unsent messages of every chat, oldest first. */
  unsent(): CachedMessage[] {
    return [...this.chats.values()].flatMap((c) => [...c.pending.values()]).filter((m) => m.status === "sending");
  }

  // --- loading ------------------------------------------------------------

  /**
   * Merges a REST page (`GET /api/chat/{id}/messages`). A page newer than
   * the cached messages with a hole between replaces them (and forgets the
   * cursor, so the next sync starts from the page). A message the cache
   * already holds keeps what events told it unless the page is newer.
   */
  load(chatId: number, messages: Message[]): void {
    if (!messages.length) return;
    const c = this.chat(chatId);
    const oldest = Math.min(...messages.map((m) => m.seq));
    if (c.bySeq.size && oldest > this.lastSeq(chatId) + 1) {
      c.bySeq.clear();
      Object.assign(c, { cursor: null, lastEventSeq: null, trusted: false });
    }
    for (const m of messages) {
      c.bySeq.set(m.seq, merged(c.bySeq.get(m.seq), m));
      this.settlePendingFor(c, m);
    }
  }

  /** Forgets a chat's messages (a sync answered tooLarge: reload it). */
  clear(chatId: number): void {
    const c = this.chats.get(chatId);
    if (!c) return;
    c.bySeq.clear();
    Object.assign(c, { cursor: null, lastEventSeq: null, trusted: false });
  }

  /** A sync of the chat answered: live events after its cursor are contiguous. */
  trust(chatId: number): void {
    this.chat(chatId).trusted = true;
  }

  /** The connection closed: trust must be earned again by the next sync. */
  distrustAll(): void {
    for (const c of this.chats.values()) c.trusted = false;
  }

  /** Forgets a chat entirely (the user left it). */
  drop(chatId: number): void {
    this.chats.delete(chatId);
  }

  // --- server events ------------------------------------------------------

  /**
   * Applies a chat event (see isChatEvent): a `message.new`, `.updated`,
   * `.deleted` or `.reaction` frame changes the cached messages, a
   * `chat.updated` only moves the chat's cursor (the app keeps the chat
   * object). Received live or in a `sync.response` (whose events follow
   * the cursor without holes).
   */
  apply(frame: Frame, source: "live" | "sync" = "live"): ApplyResult {
    const p = frame.payload ?? {};
    if (!isChatEvent(frame.type) || typeof p.chatId !== "number" || typeof p.eventId !== "string") {
      return "ignored";
    }
    const c = this.chat(p.chatId);
    if (c.cursor && compareEventIds(p.eventId, c.cursor) <= 0) return "duplicate";
    if (typeof p.eventSeq === "number" && c.lastEventSeq !== null) {
      if (p.eventSeq <= c.lastEventSeq) return "duplicate";
      if (p.eventSeq > c.lastEventSeq + 1) return "gap";
    } else if (source === "live" && !c.trusted && (c.cursor !== null || c.bySeq.size > 0)) {
      // Nothing tells whether events were missed since what the cache holds.
      return "gap";
    }
    if (source === "live" && frame.type === "message.new" && c.bySeq.size && p.message.seq > this.lastSeq(p.chatId) + 1) {
      return "gap";
    }
    this.applyEvent(c, frame.type, p);
    c.cursor = p.eventId;
    if (typeof p.eventSeq === "number") c.lastEventSeq = p.eventSeq;
    this.trim(c);
    return "applied";
  }

  private applyEvent(c: ChatCache, type: string, p: any): void {
    if (type === "message.new" || type === "message.updated") {
      const m: Message = p.message;
      const before = c.bySeq.get(m.seq);
      c.bySeq.set(m.seq, { ...m, reactions: m.reactions ?? before?.reactions ?? [], status: "sent" });
      this.settlePendingFor(c, m);
    } else if (type === "message.deleted") {
      const m = c.bySeq.get(p.seq);
      if (m) c.bySeq.set(p.seq, { ...m, content: "", deletedAt: m.deletedAt ?? new Date().toISOString() });
    } else if (type === "message.reaction") {
      const m = byId(c, p.messageId);
      if (m) c.bySeq.set(m.seq, { ...m, reactions: p.reactions as Reaction[] });
    }
  }

  /** A confirmed message replaces the pending send with its client id. */
  private settlePendingFor(c: ChatCache, m: Message): void {
    if (m.clientId && c.pending.has(m.clientId)) {
      const pending = c.pending.get(m.clientId)!;
      if (pending.senderId === m.senderId) c.pending.delete(m.clientId);
    }
  }

  // --- optimistic changes -------------------------------------------------

  addPending(chatId: number, clientId: string, senderId: number, content: string, replyTo: number | null, mentions: number[]): CachedMessage {
    const m: CachedMessage = {
      id: 0,
      chatId,
      seq: 0,
      senderId,
      content,
      clientId,
      replyTo,
      mentions,
      createdAt: new Date().toISOString(),
      editedAt: null,
      deletedAt: null,
      reactions: [],
      status: "sending",
    };
    this.chat(chatId).pending.set(clientId, m);
    return m;
  }

  /** The ack of a send: the pending message becomes message `seq`. */
  confirm(chatId: number, clientId: string, messageId: number, seq: number): void {
    const c = this.chat(chatId);
    const pending = c.pending.get(clientId);
    if (!pending) return;
    c.pending.delete(clientId);
    if (!c.bySeq.has(seq)) c.bySeq.set(seq, { ...pending, id: messageId, seq, status: "sent" });
  }

  setPendingStatus(chatId: number, clientId: string, status: SendStatus, error?: string): void {
    const m = this.chats.get(chatId)?.pending.get(clientId);
    if (m) Object.assign(m, { status, error });
  }

  pendingMessage(chatId: number, clientId: string): CachedMessage | undefined {
    return this.chats.get(chatId)?.pending.get(clientId);
  }

  discard(chatId: number, clientId: string): void {
    this.chats.get(chatId)?.pending.delete(clientId);
  }

  /**
   * Changes a confirmed message at once (edit, delete, reaction) and
   * returns the undo, to call when the server refuses the change.
   */
  patch(chatId: number, messageId: number, change: (m: CachedMessage) => Partial<CachedMessage>): () => void {
    const c = this.chats.get(chatId);
    const m = c && byId(c, messageId);
    if (!c || !m) return () => {};
    const changed = change(m);
    c.bySeq.set(m.seq, { ...m, ...changed });
    return () => {
      // Only the fields still showing the optimistic values go back: what
      // the server said meanwhile wins (seed §6.4).
      const now = c.bySeq.get(m.seq);
      if (!now) return;
      const undo: Partial<CachedMessage> = {};
      for (const key of Object.keys(changed) as (keyof CachedMessage)[]) {
        if (now[key] === changed[key]) (undo as any)[key] = m[key];
      }
      c.bySeq.set(m.seq, { ...now, ...undo });
    };
  }

  // --- persistence --------------------------------------------------------

  save(): void {
    if (!this.storage) return;
    const chats: Record<string, { messages: CachedMessage[]; cursor: string | null; lastEventSeq: number | null; pending: CachedMessage[] }> = {};
    for (const [id, c] of this.chats) {
      const confirmed = [...c.bySeq.values()].sort((a, b) => a.seq - b.seq).slice(-PERSISTED);
      const pending = [...c.pending.values()].filter((m) => m.status !== "failed");
      // The cursor is kept only with the messages it covers, else syncing from
      // it would skip messages the cache no longer holds.
      const kept = confirmed.length > 0;
      chats[id] = { messages: confirmed, cursor: kept ? c.cursor : null, lastEventSeq: kept ? c.lastEventSeq : null, pending };
    }
    try {
      this.storage.setItem(this.storageKey, JSON.stringify({ v: 1, chats }));
    } catch {
      // Quota or privacy mode: the cache stays in memory only.
    }
  }

  restore(): void {
    if (!this.storage) return;
    try {
      const doc = JSON.parse(this.storage.getItem(this.storageKey) ?? "null");
      if (doc?.v !== 1) return;
      for (const [id, saved] of Object.entries<any>(doc.chats)) {
        const c = this.chat(Number(id));
        for (const m of saved.messages) c.bySeq.set(m.seq, m);
        for (const m of saved.pending) c.pending.set(m.clientId, { ...m, status: "sending" });
        c.cursor = saved.cursor;
        c.lastEventSeq = typeof saved.lastEventSeq === "number" ? saved.lastEventSeq : null;
      }
    } catch {
      this.storage.removeItem(this.storageKey);
    }
  }

  forget(): void {
    this.chats.clear();
    this.storage?.removeItem(this.storageKey);
  }

  // --- internals ----------------------------------------------------------

  private chat(chatId: number): ChatCache {
    let c = this.chats.get(chatId);
    if (!c) {
      c = { bySeq: new Map(), pending: new Map(), cursor: null, lastEventSeq: null, trusted: false };
      this.chats.set(chatId, c);
    }
    return c;
  }

  private trim(c: ChatCache): void {
    if (c.bySeq.size <= KEPT) return;
    const seqs = [...c.bySeq.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(0, seqs.length - KEPT)) c.bySeq.delete(seq);
  }
}

/** The confirmed message with server id `messageId`. */
function byId(c: ChatCache, messageId: number): CachedMessage | undefined {
  for (const m of c.bySeq.values()) if (m.id === messageId) return m;
  return undefined;
}

/**
 * A message from a REST page over what the cache holds: the page wins for
 * text and deletion only when it is newer (a page answered after a live
 * edit must not undo it); reactions kept current by events stay.
 */
function merged(cached: CachedMessage | undefined, page: Message): CachedMessage {
  if (!cached) return { ...page, reactions: page.reactions ?? [], status: "sent" };
  const pageNewer = (page.editedAt ?? "") > (cached.editedAt ?? "");
  return {
    ...cached,
    content: cached.deletedAt || page.deletedAt ? "" : pageNewer ? page.content : cached.content,
    editedAt: pageNewer ? page.editedAt : cached.editedAt,
    deletedAt: cached.deletedAt ?? page.deletedAt,
    reactions: cached.reactions ?? page.reactions ?? [],
    status: "sent",
  };
}

/** `reactions` with `me` added to or removed from `emoji` (an optimistic reaction). */
export function toggledReaction(reactions: Reaction[], emoji: string, me: number, action: "add" | "remove"): Reaction[] {
  const others = reactions.filter((r) => r.emoji !== emoji);
  const r = reactions.find((x) => x.emoji === emoji);
  const users = new Set(r?.userIds ?? []);
  if (action === "add") users.add(me);
  else users.delete(me);
  return users.size ? [...others, { emoji, userIds: [...users], count: users.size }] : others;
}
