// The app's side of the live connection: one Realtime (the client
// library: reconnects, syncs, dedupes, retries writes, keeps the message
// cache) per signed-in tab, turned into what the views need. It feeds the
// store from frames (badges, receipts, typing, presence, membership,
// chat changes, settings, toasts when live) and reports sends refused as forbidden,
// loads pages of a chat over REST into the library's cache, and keeps
// presence subscriptions alive (they lapse after PRESENCE_SUB_TTL, 10
// minutes, and with every connection).
import type { Api } from "../client/api.js";
import { MessageCache, type CachedMessage } from "../client/cache.js";
import { Realtime, type ConnectionState as RtState } from "../client/realtime.js";
import type { Chat, Frame, PresenceState, PresenceStatus, RoleChange, Toast } from "../client/types.js";
import type { Feed, ShownMessage } from "./feed.js";
import type { ConnectionState, Store } from "./store.js";

const PAGE = 50;
/** Renew presence subscriptions well before the server's 10-minute TTL. */
const PRESENCE_RENEW_MS = 8 * 60_000;
const MAX_WATCHED = 500;

export interface LiveHooks {
  toast(t: Toast): void;
  /** The chat list may have changed (membership, a chat we lost). */
  chatsChanged(): void;
  removedFrom(chatId: number): void;
  /**
   * The chat object and roles held for this chat may be stale: a send was
   * refused as `forbidden` (who may post there changed), or the chat's
   * events were skipped (summary mode, a sync answered `tooLarge`), a
   * `chat.updated` possibly among them.
   */
  chatStale(chatId: number): void;
}

export class Live implements Feed {
  /** Called on every session.ready (first connect and reconnects). */
  onConnected: () => void = () => {};
  private readonly rt: Realtime;
  private readonly cache: MessageCache;
  /** Chats whose newest page came over REST; older pages exist when true. */
  private older = new Map<number, boolean>();
  private loading = new Map<number, Promise<void>>();
  private chatListeners = new Map<number, Set<() => void>>();
  private watching = new Set<number>();
  private renewTimer = 0;
  private focused: number | null = null;

  constructor(
    private readonly api: Api,
    private readonly store: Store,
    private readonly hooks: LiveHooks,
  ) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.cache = new MessageCache(safeStorage(), `fechatter.cache.${store.me.id}`);
    this.cache.restore();
    this.rt = new Realtime({ api, url: `${proto}//${location.host}/ws`, cache: this.cache });
    this.rt.on("state", (s) => this.onState(s));
    this.rt.on("ready", ({ ready }) => {
      this.store.setConnection("connected", ready.instance);
      this.store.setTotals(ready.unreadTotal, ready.mentionTotal);
      void this.subscribePresence();
      this.onConnected();
    });
    this.rt.on("chat", (chatId) => this.changed(chatId));
    this.rt.on("reload", (chatId) => {
      this.hooks.chatStale(chatId);
      this.older.delete(chatId);
      if (this.chatListeners.get(chatId)?.size) void this.loadNewest(chatId);
    });
    this.rt.on("gone", (chatId) => {
      this.hooks.removedFrom(chatId);
      this.hooks.chatsChanged();
    });
    this.rt.on("frame", ({ frame, live }) => this.onFrame(frame, live));
    this.rt.on("stale", () => this.hooks.chatsChanged());
    this.rt.on("refused", ({ chatId, code }) => {
      if (code === "forbidden") this.hooks.chatStale(chatId);
    });
  }

  start(): void {
    this.rt.start();
    this.renewTimer = window.setInterval(() => void this.subscribePresence(), PRESENCE_RENEW_MS);
  }

  stop(): void {
    clearInterval(this.renewTimer);
    this.rt.stop();
  }

  /** Connects again after the connection was replaced (4001) by the user's choice. */
  reconnect(): void {
    this.rt.start();
  }

  /** Sign-out: also forgets the cached messages of this user. */
  forget(): void {
    this.stop();
    this.cache.forget();
  }

  private onState(s: RtState): void {
    const map: Record<RtState, ConnectionState> = {
      idle: "connecting",
      connecting: "connecting",
      open: "connected",
      reconnecting: "reconnecting",
      replaced: "replaced",
      "signed-out": "offline",
      stopped: "offline",
    };
    if (s === "open") return; // "connected" is set with the instance on ready
    this.store.setConnection(map[s], null);
    if (s === "signed-out") this.api.forget();
  }

  private onFrame(frame: Frame, live: boolean): void {
    const p = frame.payload;
    switch (frame.type) {
      case "notification.badge":
        this.store.setBadge(p.chatId, p.unreadCount, p.mentionCount);
        break;
      case "read.receipt":
        this.store.setReceipt(p.chatId, p.userId, p.seq);
        break;
      case "typing.indicator":
        if (live) this.store.setTyping(p.chatId, p.userId, p.displayName, p.active);
        break;
      case "chat.summary":
        if (p.newMessages > 0) this.store.bump(p.chatId, frame.timestamp);
        break;
      case "chat.updated":
        // Renamed, made read-only (or not), or handed to another owner.
        this.store.applyChatUpdate(p.chat as Chat, (p.roles ?? []) as RoleChange[]);
        break;
      case "message.new":
        // A message ends its sender's typing.
        this.store.setTyping(p.chatId, p.message.senderId, "", false);
        this.store.bump(p.chatId, p.message.createdAt);
        break;
      case "notification.toast":
        if (live) this.hooks.toast(p as Toast);
        break;
      case "membership.changed":
        if (p.action === "removed") {
          this.older.delete(p.chatId);
          this.hooks.removedFrom(p.chatId);
        }
        this.hooks.chatsChanged();
        break;
      case "notification.settings":
        if (p.scope === "chat" && p.settings) this.store.setPinned(p.settings.chatId, Boolean(p.settings.pinned));
        break;
      case "presence.changed":
        for (const c of p.changes as PresenceState[]) this.store.setPresence(c.userId, c.status);
        break;
    }
  }

  private changed(chatId: number): void {
    for (const fn of this.chatListeners.get(chatId) ?? []) fn();
  }

  // --- Feed ---------------------------------------------------------------

  list(chatId: number): ShownMessage[] {
    return this.cache.messages(chatId).map(shown);
  }

  loaded(chatId: number): boolean {
    return this.older.has(chatId);
  }

  hasOlder(chatId: number): boolean {
    return this.older.get(chatId) ?? false;
  }

  /** The newest page over REST, merged into the cache (first open, tooLarge). */
  private loadNewest(chatId: number): Promise<void> {
    let p = this.loading.get(chatId);
    if (!p) {
      p = this.api
        .messages(chatId, { limit: PAGE })
        .then((page) => {
          this.cache.load(chatId, page.messages);
          this.cache.save();
          this.older.set(chatId, page.hasMore);
          this.changed(chatId);
        })
        .finally(() => this.loading.delete(chatId));
      this.loading.set(chatId, p);
    }
    return p;
  }

  async loadOlder(chatId: number): Promise<void> {
    const first = this.cache.messages(chatId).find((m) => m.seq > 0);
    if (!first) return this.loadNewest(chatId);
    const page = await this.api.messages(chatId, { beforeSeq: first.seq, limit: PAGE });
    this.cache.load(chatId, page.messages);
    this.older.set(chatId, page.hasMore);
    this.changed(chatId);
  }

  async loadUntil(chatId: number, seq: number): Promise<void> {
    if (!this.older.has(chatId)) await this.loadNewest(chatId);
    for (let i = 0; i < 40 && this.hasOlder(chatId) && !this.cache.messages(chatId).some((m) => m.seq === seq); i++) {
      await this.loadOlder(chatId);
    }
  }

  onChange(chatId: number, fn: () => void): () => void {
    let set = this.chatListeners.get(chatId);
    if (!set) this.chatListeners.set(chatId, (set = new Set()));
    set.add(fn);
    if (!this.older.has(chatId)) void this.loadNewest(chatId).catch(() => {});
    return () => set!.delete(fn);
  }

  send(chatId: number, content: string, replyTo: number | null): void {
    this.rt.send(chatId, content, { replyTo });
  }

  retry(chatId: number, key: string): void {
    if (key.startsWith("p")) this.rt.retry(chatId, key.slice(1));
  }

  discard(chatId: number, key: string): void {
    if (!key.startsWith("p")) return;
    this.cache.discard(chatId, key.slice(1));
    this.cache.save();
    this.changed(chatId);
  }

  async edit(chatId: number, messageId: number, content: string): Promise<void> {
    await this.rt.edit(chatId, messageId, content);
  }

  async remove(chatId: number, messageId: number): Promise<void> {
    await this.rt.remove(chatId, messageId);
  }

  async react(chatId: number, messageId: number, emoji: string, add: boolean): Promise<void> {
    await this.rt.react(chatId, messageId, emoji, add ? "add" : "remove");
  }

  markRead(chatId: number, seq: number): void {
    this.rt.markRead(chatId, seq).catch(() => {});
  }

  typing(chatId: number, active: boolean): void {
    this.rt.typing(chatId, active);
  }

  // --- focus, presence ----------------------------------------------------

  /** The chat shown while the window has focus (null: none), for toasts and badges. */
  focusChat(chatId: number | null): void {
    if (chatId === this.focused) return;
    this.focused = chatId;
    this.rt.focus(chatId);
  }

  /**
   * The user is active here: any frame but ping keeps (or makes) this
   * connection "active" for presence; chat.focus with the current chat
   * changes nothing else.
   */
  touch(): void {
    if (this.rt.state === "open") this.rt.focus(this.focused);
  }

  async setStatus(status: Exclude<PresenceStatus, "offline">): Promise<void> {
    try {
      const ack = await this.rt.setPresence(status);
      this.store.setPresence(this.store.me.id, ack.presence);
    } catch {
      this.store.emit("presence"); // puts the selector back
    }
  }

  /** Watches these users' presence (kept across reconnects, renewed before the TTL). */
  watch(userIds: number[]): void {
    const fresh = userIds.filter((id) => !this.watching.has(id));
    if (!fresh.length) return;
    for (const id of fresh) if (this.watching.size < MAX_WATCHED) this.watching.add(id);
    if (this.rt.state === "open") void this.subscribePresence(fresh);
  }

  private async subscribePresence(ids: number[] = [...this.watching]): Promise<void> {
    const userIds = [...new Set([this.store.me.id, ...ids])].slice(0, MAX_WATCHED);
    try {
      const ack = await this.rt.watchPresence(userIds);
      for (const s of (ack.presence ?? []) as PresenceState[]) this.store.setPresence(s.userId, s.status);
    } catch {
      // Rate limited or disconnected: the next ready or renewal subscribes again.
    }
  }
}

function shown(m: CachedMessage): ShownMessage {
  const pending = m.status !== "sent" || m.seq === 0;
  return {
    key: pending ? `p${m.clientId}` : `m${m.id}`,
    id: pending ? null : m.id,
    seq: pending ? null : m.seq,
    senderId: m.senderId,
    content: m.content,
    replyTo: m.replyTo,
    mentions: m.mentions,
    createdAt: m.createdAt,
    editedAt: m.editedAt,
    deletedAt: m.deletedAt,
    reactions: m.reactions ?? [],
    state: m.status,
  };
}

function safeStorage(): Storage | undefined {
  try {
    return window.localStorage;
  } catch {
    return undefined;
  }
}
