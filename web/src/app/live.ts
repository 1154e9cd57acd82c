// TEMPORARY live connection until web/src/client/realtime.ts lands: a
// minimal socket + cache so the views can be exercised; replaced by an
// adapter over the library's Realtime.
import type { Api } from "../client/api.js";
import type { Frame, Message, PresenceStatus, SessionReady, Toast } from "../client/types.js";
import type { Feed, ShownMessage } from "./message_view.js";
import type { Store } from "./store.js";

export interface LiveHooks {
  toast(t: Toast): void;
  chatsChanged(): void;
  removedFrom(chatId: number): void;
}

interface ChatCache {
  messages: Map<number, ShownMessage>;
  pending: Map<string, ShownMessage & { replyToId: number | null }>;
  hasOlder: boolean;
  loaded: boolean;
  listeners: Set<() => void>;
}

export class Live implements Feed {
  onConnected: () => void = () => {};
  private ws: WebSocket | null = null;
  private stopped = false;
  private caches = new Map<number, ChatCache>();
  private waiting = new Map<string, { resolve: (p: any) => void; reject: (e: Error) => void }>();
  private focused: number | null = null;
  private watching = new Set<number>();

  constructor(
    private readonly api: Api,
    private readonly store: Store,
    private readonly hooks: LiveHooks,
  ) {}

  start(): void {
    void this.connect();
  }
  stop(): void {
    this.stopped = true;
    this.ws?.close(1000);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const token = await this.api.accessToken();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onmessage = (ev) => this.onFrame(JSON.parse(String(ev.data)) as Frame);
    ws.onclose = () => {
      if (this.stopped) return;
      this.store.setConnection("reconnecting", null);
      setTimeout(() => void this.connect(), 1000 + Math.random() * 1000);
    };
  }

  private frame(type: string, payload: unknown): Promise<any> {
    const id = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.ws?.send(JSON.stringify({ type, id, timestamp: new Date().toISOString(), payload }));
    });
  }

  private onFrame(f: Frame): void {
    const p = f.payload;
    switch (f.type) {
      case "session.ready": {
        const r = p as SessionReady;
        this.store.setConnection("connected", r.instance);
        this.store.setTotals(r.unreadTotal, r.mentionTotal);
        for (const [chatId, c] of this.caches) if (c.loaded) void this.reload(chatId);
        if (this.focused !== null) void this.frame("chat.focus", { chatId: this.focused });
        if (this.watching.size) void this.subscribe();
        this.onConnected();
        break;
      }
      case "ack":
      case "error": {
        const w = this.waiting.get(p.refId);
        if (w) {
          this.waiting.delete(p.refId);
          if (f.type === "ack") w.resolve(p);
          else w.reject(new Error(p.message));
        }
        break;
      }
      case "message.new":
      case "message.updated":
        this.put(p.chatId, p.message as Message);
        break;
      case "message.deleted": {
        const c = this.caches.get(p.chatId);
        const m = c?.messages.get(p.seq);
        if (c && m) {
          c.messages.set(p.seq, { ...m, content: "", deletedAt: f.timestamp });
          this.changed(p.chatId);
        }
        break;
      }
      case "message.reaction": {
        const c = this.caches.get(p.chatId);
        if (!c) break;
        for (const [seq, m] of c.messages)
          if (m.id === p.messageId) c.messages.set(seq, { ...m, reactions: p.reactions });
        this.changed(p.chatId);
        break;
      }
      case "typing.indicator":
        this.store.setTyping(p.chatId, p.userId, p.displayName, p.active);
        break;
      case "read.receipt":
        this.store.setReceipt(p.chatId, p.userId, p.seq);
        break;
      case "notification.badge":
        this.store.setBadge(p.chatId, p.unreadCount, p.mentionCount);
        break;
      case "notification.toast":
        this.hooks.toast(p as Toast);
        break;
      case "membership.changed":
        if (p.action === "removed") this.hooks.removedFrom(p.chatId);
        this.hooks.chatsChanged();
        break;
      case "presence.changed":
        for (const c of p.changes) this.store.setPresence(c.userId, c.status);
        break;
    }
  }

  private cache(chatId: number): ChatCache {
    let c = this.caches.get(chatId);
    if (!c) {
      c = { messages: new Map(), pending: new Map(), hasOlder: false, loaded: false, listeners: new Set() };
      this.caches.set(chatId, c);
    }
    return c;
  }

  private put(chatId: number, m: Message): void {
    const c = this.cache(chatId);
    const old = c.messages.get(m.seq);
    c.messages.set(m.seq, shown(m, old?.reactions ?? m.reactions ?? []));
    if (m.clientId) c.pending.delete(m.clientId);
    this.changed(chatId);
  }

  private changed(chatId: number): void {
    for (const fn of this.caches.get(chatId)?.listeners ?? []) fn();
  }

  private async reload(chatId: number): Promise<void> {
    const c = this.cache(chatId);
    const page = await this.api.messages(chatId, { limit: 50 });
    if (!c.loaded) c.hasOlder = page.hasMore;
    c.loaded = true;
    for (const m of page.messages) c.messages.set(m.seq, shown(m, m.reactions ?? []));
    this.changed(chatId);
  }

  list(chatId: number): ShownMessage[] {
    const c = this.cache(chatId);
    return [...[...c.messages.values()].sort((a, b) => a.seq! - b.seq!), ...c.pending.values()];
  }
  hasOlder(chatId: number): boolean {
    return this.cache(chatId).hasOlder;
  }
  async loadOlder(chatId: number): Promise<void> {
    const c = this.cache(chatId);
    const first = Math.min(...c.messages.keys());
    const page = await this.api.messages(chatId, { beforeSeq: first, limit: 50 });
    for (const m of page.messages) c.messages.set(m.seq, shown(m, m.reactions ?? []));
    c.hasOlder = page.hasMore;
    this.changed(chatId);
  }
  async loadUntil(chatId: number, seq: number): Promise<void> {
    const c = this.cache(chatId);
    if (!c.loaded) await this.reload(chatId);
    for (let i = 0; i < 20 && c.hasOlder && !c.messages.has(seq); i++) await this.loadOlder(chatId);
  }
  async seqOf(chatId: number, messageId: number): Promise<number | null> {
    for (const m of this.cache(chatId).messages.values()) if (m.id === messageId) return m.seq;
    return null;
  }
  onChange(chatId: number, fn: () => void): () => void {
    const c = this.cache(chatId);
    c.listeners.add(fn);
    if (!c.loaded) void this.reload(chatId);
    return () => c.listeners.delete(fn);
  }
  follow(_chatId: number): void {}
  send(chatId: number, content: string, replyTo: number | null): void {
    const c = this.cache(chatId);
    const clientId = crypto.randomUUID();
    const p: ShownMessage & { replyToId: number | null } = { key: `p${clientId}`, id: null, seq: null, senderId: this.store.me.id, content, replyTo, mentions: [], createdAt: new Date().toISOString(), editedAt: null, deletedAt: null, reactions: [], state: "sending", replyToId: replyTo };
    c.pending.set(clientId, p);
    this.changed(chatId);
    void this.api
      .call("POST", `/api/chat/${chatId}/messages`, { content, clientId, replyTo })
      .catch(() => {
        c.pending.set(clientId, { ...p, state: "failed" });
        this.changed(chatId);
      });
  }
  retry(): void {}
  discard(chatId: number, key: string): void {
    this.cache(chatId).pending.delete(key.slice(1));
    this.changed(chatId);
  }
  async edit(_chatId: number, messageId: number, content: string): Promise<void> {
    await this.frame("message.edit", { messageId, content });
  }
  async remove(_chatId: number, messageId: number): Promise<void> {
    await this.frame("message.delete", { messageId });
  }
  async react(_chatId: number, messageId: number, emoji: string, add: boolean): Promise<void> {
    await this.frame("message.react", { messageId, emoji, action: add ? "add" : "remove" });
  }
  markRead(chatId: number, seq: number): void {
    void this.frame("read.mark", { chatId, seq }).catch(() => {});
    this.store.setBadge(chatId, 0, 0);
  }
  typing(chatId: number, active: boolean): void {
    void this.frame(active ? "typing.start" : "typing.stop", { chatId }).catch(() => {});
  }
  focusChat(chatId: number | null): void {
    this.focused = chatId;
    if (this.ws?.readyState === WebSocket.OPEN) void this.frame("chat.focus", { chatId }).catch(() => {});
  }
  async setStatus(status: Exclude<PresenceStatus, "offline">): Promise<void> {
    const ack = await this.frame("presence.update", { status });
    this.store.setPresence(this.store.me.id, ack.presence);
  }
  watch(userIds: number[]): void {
    for (const id of userIds) this.watching.add(id);
    if (this.ws?.readyState === WebSocket.OPEN) void this.subscribe();
  }
  private async subscribe(): Promise<void> {
    const ack = await this.frame("presence.subscribe", { userIds: [...this.watching] });
    for (const s of ack.presence) this.store.setPresence(s.userId, s.status);
  }
}

function shown(m: Message, reactions: ShownMessage["reactions"]): ShownMessage {
  return { key: `m${m.id}`, id: m.id, seq: m.seq, senderId: m.senderId, content: m.content, replyTo: m.replyTo, mentions: m.mentions, createdAt: m.createdAt, editedAt: m.editedAt, deletedAt: m.deletedAt, reactions, state: "sent" };
}
