// The WebSocket half of the client (docs/protocol.md, seed 002 §2, §6):
// one connection kept open across gateway deaths, with everything a chat
// client needs to lose nothing and show nothing twice.
//
// * Reconnect with exponential backoff and jitter (backoff.ts); a 4401
//   close refreshes the token first; 4001 (replaced by a sixth
//   connection) stops.
// * After every `session.ready`: one `sync.request` with the cursor of
//   every cached chat and the last user-event id, paging on `hasMore`;
//   live gaps (eventSeq jumps) sync that chat again.
// * Dedupe: chat events by event id (cache.ts), other frames by frame id.
// * Writes (sends, edits, deletes, reactions, read marks) are retried with
//   the same frame id every RETRY_MS without an answer, resent at once
//   after a reconnect, and retried after `retryAfterMs` when refused as
//   rate_limited or unavailable; the server's idempotency makes retries safe.
// * Sends of one chat go one at a time, in the order they were made (a
//   chat's "lane"): a refused or slow send holds the ones typed after it,
//   so messages commit in typing order even under the rate limit.
// * Optimistic sends (seed §6.4) appear in the cache at once as "sending",
//   become "sent" on the ack (or on their own `message.new`), "failed" on
//   an error, with `retry`.
// * Token refresh: on `token.refresh` (60 s before expiry) the token is
//   refreshed over REST and handed to the connection (`auth.refresh`).
// * Heartbeat: a `ping` every heartbeatIntervalMs; no answer within
//   PING_TIMEOUT_MS means the connection is dead and is replaced.
import { Api, ApiError } from "./api.js";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from "./backoff.js";
import { MessageCache } from "./cache.js";
import type { Frame, PresenceStatus, SearchPage, SessionReady } from "./types.js";

export const RETRY_MS = 5000;
export const PING_TIMEOUT_MS = 10_000;
/** Retries of a write refused as rate_limited/unavailable before it fails. */
export const MAX_REFUSALS = 5;
const WRITES = new Set(["message.send", "message.edit", "message.delete", "message.react", "read.mark"]);
const SYNC_CHATS_PER_REQUEST = 200;

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "replaced" | "signed-out" | "stopped";

export class RealtimeError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "RealtimeError";
  }
}

/** The part of the browser's WebSocket this client uses. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

export interface Timers {
  setTimeout(fn: () => void, ms: number): any;
  clearTimeout(handle: any): void;
}

export interface RealtimeOptions {
  api: Api;
  /** The WebSocket URL without the token, e.g. "wss://host/ws". */
  url: string;
  socket?: (url: string) => SocketLike;
  cache?: MessageCache;
  backoff?: BackoffPolicy;
  random?: () => number;
  timers?: Timers;
  newId?: () => string;
}

/** What listeners receive, by event name. */
export interface RealtimeEvents {
  /** The connection state changed. */
  state: ConnectionState;
  /** A `session.ready`; `reconnect` is false only for the first one. */
  ready: { ready: SessionReady; reconnect: boolean };
  /**
   * A server frame other than ack/error/sync (after dedupe): chat events,
   * typing, receipts, badges, toasts, presence, membership, settings.
   * `live` is false for frames replayed by a sync (and for the badges and
   * receipts a sync reports): show toasts only when live.
   */
  frame: { frame: Frame; live: boolean };
  /** The cached messages of this chat changed. */
  chat: number;
  /** The cache lost track of this chat (sync tooLarge): reload it over REST. */
  reload: number;
  /** A chat the user is no longer in (sync answered not_found). */
  gone: number;
}

type Listener<K extends keyof RealtimeEvents> = (value: RealtimeEvents[K]) => void;

interface Pending {
  id: string;
  /** The chat whose send lane this send waits in (sends only). */
  lane: number | null;
  type: string;
  payload: any;
  write: boolean;
  refusals: number;
  timer: any;
  sent: boolean;
  resolve(payload: any): void;
  reject(error: RealtimeError): void;
}

export class Realtime {
  readonly cache: MessageCache;
  state: ConnectionState = "idle";
  ready: SessionReady | null = null;
  private ws: SocketLike | null = null;
  private attempt = 0;
  private everReady = false;
  /** Whether the current socket got its session.ready. */
  private gotReady = false;
  private reconnectTimer: any = null;
  private pingTimer: any = null;
  private pending = new Map<string, Pending>();
  private seen = new Set<string>();
  private userCursor: string | null = null;
  private syncing = new Set<number>();
  /** Chats that saw a gap while a sync of them was in flight: synced again after it. */
  private resyncAfter = new Set<number>();
  private searches = new Map<string, SearchPage>();
  private focused: number | null = null;
  /** Per chat, the client ids of its unanswered sends, oldest first. */
  private lanes = new Map<number, string[]>();
  private listeners = new Map<keyof RealtimeEvents, Set<(value: any) => void>>();
  private readonly timers: Timers;
  private readonly newId: () => string;

  constructor(private readonly opts: RealtimeOptions) {
    this.cache = opts.cache ?? new MessageCache();
    this.timers = opts.timers ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h) };
    this.newId = opts.newId ?? uuid;
  }

  on<K extends keyof RealtimeEvents>(event: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => void set.delete(fn);
  }

  private emit<K extends keyof RealtimeEvents>(event: K, value: RealtimeEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(value);
      } catch (e) {
        console.error(`realtime ${event} listener failed`, e);
      }
    }
  }

  // --- lifecycle ----------------------------------------------------------

  /** Connects and stays connected until `stop()`. Unsent messages of the cache are sent. */
  start(): void {
    if (this.ws || this.reconnectTimer) return;
    for (const m of this.cache.unsent()) {
      if (this.pending.has(m.clientId!)) continue;
      this.sendWrite(m.chatId, m.clientId!, m.content, m.replyTo, m.mentions);
    }
    void this.connect();
  }

  stop(): void {
    this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      ws.close(1000, "client stopped");
    }
    this.dropRequests();
    this.setState("stopped");
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  private async connect(): Promise<void> {
    this.reconnectTimer = null;
    this.setState(this.everReady ? "reconnecting" : "connecting");
    let token: string;
    try {
      token = await this.opts.api.accessToken();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return this.signedOut();
      return this.scheduleReconnect();
    }
    if (this.state === "stopped") return;
    const url = `${this.opts.url}${this.opts.url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
    const ws = (this.opts.socket ?? ((u) => new WebSocket(u) as unknown as SocketLike))(url);
    this.ws = ws;
    ws.onmessage = (ev) => this.onText(String(ev.data));
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
    ws.onerror = () => {};
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.state === "stopped") return;
    const delay = backoffDelay(this.attempt++, this.opts.backoff ?? DEFAULT_BACKOFF, this.opts.random);
    this.setState("reconnecting");
    this.reconnectTimer = this.timers.setTimeout(() => void this.connect(), delay);
  }

  private onClose(ws: SocketLike, code: number, reason: string): void {
    if (ws !== this.ws) return;
    const wasReady = this.gotReady;
    this.gotReady = false;
    detach(ws);
    this.ws = null;
    this.ready = null;
    this.stopHeartbeat();
    this.dropRequests();
    if (code === 4001) return this.setState("replaced");
    // 4401, or a second connection in a row refused before session.ready
    // (an upgrade answered 401 looks like any failed connection to a
    // browser): an expired token or a revoked session, and a refresh tells
    // them apart.
    if (code === 4401 || (!wasReady && this.attempt >= 1)) {
      this.opts.api.refresh().then(
        () => this.scheduleReconnect(),
        (e) => (e instanceof ApiError && e.status === 401 ? this.signedOut() : this.scheduleReconnect()),
      );
      return;
    }
    void reason;
    this.scheduleReconnect();
  }

  private signedOut(): void {
    this.stop();
    this.setState("signed-out");
  }

  /** Requests that cannot wait for the next connection fail now; writes stay queued. */
  private dropRequests(): void {
    for (const p of this.pending.values()) {
      this.timers.clearTimeout(p.timer);
      p.sent = false;
      if (!p.write) {
        this.pending.delete(p.id);
        p.reject(new RealtimeError("disconnected", "the connection closed before an answer"));
      }
    }
    this.syncing.clear();
    this.resyncAfter.clear();
  }

  // --- incoming frames ----------------------------------------------------

  private onText(text: string): void {
    let frame: Frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    switch (frame.type) {
      case "session.ready":
        return this.onReady(frame.payload);
      case "ack":
      case "error":
        return this.settle(frame);
      case "sync.response":
        return this.onSyncChat(frame.payload);
      case "sync.user":
        return this.onSyncUser(frame.payload);
      case "search.results":
        this.searches.set(frame.payload.refId, frame.payload);
        return;
      case "token.refresh":
        void this.refreshToken();
        break;
    }
    this.onEvent(frame, true);
  }

  /** A chat or user event, live or replayed. */
  private onEvent(frame: Frame, live: boolean): void {
    if (frame.type.startsWith("message.")) {
      const result = this.cache.apply(frame);
      if (result === "gap") return this.onGap(frame.payload.chatId);
      if (result !== "applied") return;
      this.emit("chat", frame.payload.chatId);
    } else {
      if (frame.id && this.seen.has(frame.id)) return;
      if (frame.id) remember(this.seen, frame.id);
      const cursor = frame.payload?.userEventId;
      if (typeof cursor === "string" && (!this.userCursor || compareStreamIds(cursor, this.userCursor) > 0)) {
        this.userCursor = cursor;
      }
      if (frame.type === "membership.changed" && frame.payload.action === "removed") {
        this.cache.drop(frame.payload.chatId);
      }
    }
    this.emit("frame", { frame, live });
  }

  private onReady(ready: SessionReady): void {
    const reconnect = this.everReady;
    this.ready = ready;
    this.everReady = true;
    this.gotReady = true;
    this.attempt = 0;
    const since = reconnect || this.userCursor ? this.userCursor : null;
    if (!this.userCursor) this.userCursor = ready.userEventId;
    this.setState("open");
    this.startHeartbeat(ready.heartbeatIntervalMs);
    this.emit("ready", { ready, reconnect });
    const chats = this.cache.chatIds().filter((id) => ready.chats.includes(id));
    for (const id of this.cache.chatIds()) if (!ready.chats.includes(id)) this.cache.drop(id);
    this.syncChats(chats, since ?? undefined);
    if (this.focused !== null) this.request("chat.focus", { chatId: this.focused }).catch(() => {});
    // Writes that waited for this connection (seed §6.5: sent on reconnect).
    for (const p of this.pending.values()) if (!p.sent) this.transmit(p);
  }

  // --- sync ---------------------------------------------------------------

  /** Asks for what the cache of these chats (and, with `user`, the user stream) missed. */
  syncChats(chatIds: number[], user?: string): void {
    const ids = chatIds.filter((id) => !this.syncing.has(id));
    for (let i = 0; i < ids.length || (i === 0 && user); i += SYNC_CHATS_PER_REQUEST) {
      const chunk = ids.slice(i, i + SYNC_CHATS_PER_REQUEST);
      const chats: Record<string, string | number> = {};
      for (const id of chunk) {
        chats[id] = this.cache.cursor(id);
        this.syncing.add(id);
      }
      const payload: any = chunk.length ? { chats } : {};
      if (user && i === 0) payload.user = user;
      this.requestSync(payload, chunk);
    }
  }

  private onGap(chatId: number): void {
    if (this.syncing.has(chatId)) this.resyncAfter.add(chatId);
    else this.syncChats([chatId]);
  }

  private requestSync(payload: any, chats: number[], refusals = 0): void {
    this.request("sync.request", payload).then(
      () => {
        chats.forEach((id) => this.syncing.delete(id));
        const again = chats.filter((id) => this.resyncAfter.delete(id));
        if (again.length) this.syncChats(again);
      },
      (e: RealtimeError) => {
        chats.forEach((id) => this.syncing.delete(id));
        // Rate limited: the sync must still happen; other failures are retried by the next ready.
        if (e.code === "rate_limited" && refusals < MAX_REFUSALS && this.state === "open") {
          this.timers.setTimeout(() => this.syncChats(chats, payload.user), e.retryAfterMs ?? 1000);
        }
      },
    );
  }

  private onSyncChat(p: any): void {
    const chatId: number = p.chatId;
    if (p.error) {
      this.cache.drop(chatId);
      return this.emit("gone", chatId);
    }
    if (p.tooLarge) {
      this.cache.clear(chatId);
      this.emit("chat", chatId);
      return this.emit("reload", chatId);
    }
    for (const event of p.events ?? []) this.onEvent(event, false);
    const now = new Date().toISOString();
    if (p.badge) {
      this.emit("frame", { frame: synthetic("notification.badge", now, { chatId, ...p.badge }), live: false });
    }
    for (const r of p.readReceipts ?? []) {
      this.emit("frame", { frame: synthetic("read.receipt", now, { chatId, ...r }), live: false });
    }
    if (p.hasMore) {
      this.syncing.delete(chatId);
      this.requestSync({ chats: { [chatId]: p.cursor } }, [chatId]);
      this.syncing.add(chatId);
    }
  }

  private onSyncUser(p: any): void {
    for (const event of p.events ?? []) this.onEvent(event, false);
    if (typeof p.cursor === "string" && p.cursor !== "0-0") this.userCursor = p.cursor;
    if (p.hasMore) this.requestSync({ user: p.cursor }, []);
  }

  // --- requests -----------------------------------------------------------

  /**
   * Sends a client frame; resolves with the ack's payload, rejects with a
   * RealtimeError on an `error` frame (or "disconnected"). Writes are kept
   * and retried until answered; other frames need an open connection.
   */
  request<T = any>(type: string, payload: object, id: string = this.newId()): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const lane = type === "message.send" ? (payload as { chatId: number }).chatId : null;
      const p: Pending = { id, lane, type, payload, write: WRITES.has(type), refusals: 0, timer: null, sent: false, resolve, reject };
      if (!p.write && this.state !== "open") {
        return reject(new RealtimeError("disconnected", "not connected"));
      }
      this.pending.set(id, p);
      if (lane !== null) {
        const queue = this.lanes.get(lane) ?? [];
        if (!queue.includes(id)) queue.push(id);
        this.lanes.set(lane, queue);
      }
      this.transmit(p);
    });
  }

  private transmit(p: Pending): void {
    this.timers.clearTimeout(p.timer);
    if (this.state !== "open" || !this.ws) return;
    if (p.lane !== null && this.lanes.get(p.lane)?.[0] !== p.id) return;
    this.ws.send(JSON.stringify({ type: p.type, id: p.id, timestamp: new Date().toISOString(), payload: p.payload }));
    p.sent = true;
    if (p.write) p.timer = this.timers.setTimeout(() => this.transmit(p), RETRY_MS);
  }

  private settle(frame: Frame): void {
    const p = this.pending.get(frame.payload?.refId);
    if (!p) return;
    this.timers.clearTimeout(p.timer);
    if (frame.type === "ack") {
      this.finish(p);
      return p.resolve(frame.payload);
    }
    const { code, message, retryAfterMs } = frame.payload;
    if (p.write && (code === "rate_limited" || code === "unavailable") && p.refusals < MAX_REFUSALS) {
      p.refusals += 1;
      p.timer = this.timers.setTimeout(() => this.transmit(p), retryAfterMs ?? 1000);
      return;
    }
    this.finish(p);
    p.reject(new RealtimeError(code, message, retryAfterMs));
  }

  /** An answered request leaves; the next send of its chat's lane goes. */
  private finish(p: Pending): void {
    this.pending.delete(p.id);
    if (p.lane === null) return;
    const queue = (this.lanes.get(p.lane) ?? []).filter((id) => id !== p.id);
    if (!queue.length) return void this.lanes.delete(p.lane);
    this.lanes.set(p.lane, queue);
    const next = this.pending.get(queue[0]);
    if (next && !next.sent) this.transmit(next);
  }

  // --- writes -------------------------------------------------------------

  /**
   * Sends a message optimistically: it is in the cache at once ("sending"),
   * then "sent" or "failed". Returns its client id (the frame id).
   */
  send(chatId: number, content: string, opts: { replyTo?: number | null; mentions?: number[]; priority?: "normal" | "urgent" } = {}): string {
    const clientId = this.newId();
    const me = this.opts.api.session?.user.id ?? 0;
    this.cache.addPending(chatId, clientId, me, content, opts.replyTo ?? null, opts.mentions ?? []);
    this.emit("chat", chatId);
    this.sendWrite(chatId, clientId, content, opts.replyTo ?? null, opts.mentions ?? [], opts.priority);
    return clientId;
  }

  /** Sends a failed message again, with the same id. */
  retry(chatId: number, clientId: string): void {
    const m = this.cache.pendingMessage(chatId, clientId);
    if (!m) return;
    this.cache.setPendingStatus(chatId, clientId, "sending");
    this.emit("chat", chatId);
    this.sendWrite(chatId, clientId, m.content, m.replyTo, m.mentions);
  }

  private sendWrite(chatId: number, clientId: string, content: string, replyTo: number | null, mentions: number[], priority?: string): void {
    const payload: any = { chatId, content, mentions };
    if (replyTo) payload.replyTo = replyTo;
    if (priority) payload.priority = priority;
    this.cache.save();
    this.request<{ messageId: number; seq: number }>("message.send", payload, clientId).then(
      (ack) => this.cache.confirm(chatId, clientId, ack.messageId, ack.seq),
      (e: RealtimeError) => this.cache.setPendingStatus(chatId, clientId, "failed", e.message),
    ).finally(() => {
      this.cache.save();
      this.emit("chat", chatId);
    });
  }

  /** Applies `change` to the cache now, undoes it if the server refuses `type`. */
  private optimistic(chatId: number, messageId: number, change: Parameters<MessageCache["patch"]>[2], type: string, payload: object): Promise<any> {
    const undo = this.cache.patch(chatId, messageId, change);
    this.emit("chat", chatId);
    return this.request(type, payload).catch((e) => {
      undo();
      this.emit("chat", chatId);
      throw e;
    });
  }

  edit(chatId: number, messageId: number, content: string): Promise<any> {
    const editedAt = new Date().toISOString();
    return this.optimistic(chatId, messageId, () => ({ content, editedAt }), "message.edit", { messageId, content });
  }

  remove(chatId: number, messageId: number): Promise<any> {
    const deletedAt = new Date().toISOString();
    return this.optimistic(chatId, messageId, () => ({ content: "", deletedAt }), "message.delete", { messageId });
  }

  react(chatId: number, messageId: number, emoji: string, action: "add" | "remove"): Promise<any> {
    const me = this.opts.api.session?.user.id ?? 0;
    return this.optimistic(chatId, messageId, (m) => ({ reactions: toggled(m.reactions ?? [], emoji, me, action) }), "message.react", { messageId, emoji, action });
  }

  markRead(chatId: number, seq: number): Promise<any> {
    return this.request("read.mark", { chatId, seq });
  }

  typing(chatId: number, active: boolean): void {
    if (this.state !== "open") return;
    this.request(active ? "typing.start" : "typing.stop", { chatId }).catch(() => {});
  }

  /** The chat this connection shows (no toasts or badge increments for it); kept across reconnects. */
  focus(chatId: number | null): void {
    this.focused = chatId;
    if (this.state === "open") this.request("chat.focus", { chatId }).catch(() => {});
  }

  setPresence(status: Exclude<PresenceStatus, "offline">): Promise<{ presence: PresenceStatus }> {
    return this.request("presence.update", { status });
  }

  watchPresence(userIds: number[]): Promise<any> {
    return this.request("presence.subscribe", { userIds });
  }

  /** `search.query`: resolves with the page `search.results` carried. */
  async search(query: { scope: "messages" | "people" | "chats"; q: string; chatId?: number; cursor?: string; limit?: number; includePublic?: boolean }): Promise<SearchPage> {
    const id = this.newId();
    await this.request("search.query", query, id);
    const page = this.searches.get(id);
    this.searches.delete(id);
    return page ?? { scope: query.scope, results: [], cursor: null };
  }

  // --- token refresh and heartbeat ---------------------------------------

  private async refreshToken(): Promise<void> {
    try {
      const session = await this.opts.api.refresh();
      await this.request("auth.refresh", { accessToken: session.accessToken });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) this.signedOut();
      // Otherwise the connection closes with 4401 at expiry and reconnects with a fresh token.
    }
  }

  private startHeartbeat(intervalMs: number): void {
    this.stopHeartbeat();
    this.pingTimer = this.timers.setTimeout(() => this.ping(intervalMs), intervalMs);
  }

  private stopHeartbeat(): void {
    this.timers.clearTimeout(this.pingTimer);
    this.pingTimer = null;
  }

  private ping(intervalMs: number): void {
    const ws = this.ws;
    const deadline = this.timers.setTimeout(() => {
      // No answer: the connection is dead even if the socket has not noticed.
      if (ws && ws === this.ws) {
        ws.close(4000, "no heartbeat answer");
        this.onClose(ws, 4000, "no heartbeat answer");
      }
    }, PING_TIMEOUT_MS);
    this.request("ping", {})
      .then(() => this.startHeartbeat(intervalMs))
      .catch(() => {})
      .finally(() => this.timers.clearTimeout(deadline));
  }
}

/** A random UUID, also where `crypto.randomUUID` is missing (plain-http origins other than localhost). */
export function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function detach(ws: SocketLike): void {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
  ws.onopen = null;
}

function synthetic(type: string, timestamp: string, payload: any): Frame {
  return { type, id: "", timestamp, payload };
}

/** Keeps the last 4096 frame ids. */
function remember(seen: Set<string>, id: string): void {
  seen.add(id);
  if (seen.size > 4096) seen.delete(seen.values().next().value as string);
}

export function compareStreamIds(a: string, b: string): number {
  const [am, an] = a.split("-").map(BigInt);
  const [bm, bn] = b.split("-").map(BigInt);
  return am !== bm ? (am < bm ? -1 : 1) : an === bn ? 0 : an < bn ? -1 : 1;
}

function toggled(reactions: { emoji: string; userIds: number[]; count: number }[], emoji: string, me: number, action: "add" | "remove") {
  const others = reactions.filter((r) => r.emoji !== emoji);
  const r = reactions.find((x) => x.emoji === emoji);
  const users = new Set(r?.userIds ?? []);
  if (action === "add") users.add(me);
  else users.delete(me);
  return users.size ? [...others, { emoji, userIds: [...users], count: users.size }] : others;
}
