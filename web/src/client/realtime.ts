// The WebSocket half of the client (docs/protocol.md, seed 002 §2, §6):
// one connection kept open across gateway deaths, with everything a chat
// client needs to lose nothing and show nothing twice.
//
// * Reconnect with exponential backoff and jitter (backoff.ts); the
//   backoff starts over only after a connection stayed up STABLE_MS, so a
//   connection that keeps dying right after `session.ready` backs off too.
//   A 4401 close, or two connections in a row refused before
//   `session.ready` (a refused upgrade looks like any failure to a
//   browser), first refresh the token: a refused refresh signs out. 4001
//   (replaced by a sixth connection) stops.
// * After every `session.ready`, the cached chats and the user stream are
//   synced (sync.ts); writes waiting for a connection go (requests.ts).
// * Dedupe: chat events by event id in the cache (cache.ts), other frames
//   by frame id here.
// * Optimistic sends, edits, deletes and reactions (seed §6.4) change the
//   cache at once; a refused one is marked failed (sends) or undone.
// * Token refresh: on `token.refresh` (60 s before expiry) the token is
//   refreshed over REST and handed to the connection (`auth.refresh`).
// * Heartbeat: a `ping` every heartbeatIntervalMs; no answer within
//   PING_TIMEOUT_MS means the connection is dead and is replaced.
import { ApiError } from "./api.js";
import { backoffDelay, DEFAULT_BACKOFF } from "./backoff.js";
import { isChatEvent, MessageCache, toggledReaction, type CachedMessage } from "./cache.js";
import type { ConnectionState, RealtimeEvents, RealtimeOptions, SocketLike, Timers } from "./realtime_options.js";
import { RealtimeError, Requests } from "./requests.js";
import { Syncer } from "./sync.js";
import type { Frame, PresenceStatus, SearchPage, SessionReady } from "./types.js";

export { RealtimeError, RETRY_MS, MAX_REFUSALS } from "./requests.js";
export type { ConnectionState, RealtimeEvents, RealtimeOptions, SocketLike, Timers } from "./realtime_options.js";
export const PING_TIMEOUT_MS = 10_000;
/** A connection up this long resets the reconnect backoff. */
export const STABLE_MS = 30_000;
const DEFAULT_MAX_FRAME_BYTES = 65_536;

type Listener<K extends keyof RealtimeEvents> = (value: RealtimeEvents[K]) => void;

export class Realtime {
  readonly cache: MessageCache;
  state: ConnectionState = "idle";
  ready: SessionReady | null = null;
  private ws: SocketLike | null = null;
  private attempt = 0;
  private everReady = false;
  /** When the current socket got its session.ready (null: not yet). */
  private readyAt: number | null = null;
  private reconnectTimer: any = null;
  private pingTimer: any = null;
  private seen = new Set<string>();
  private searches = new Map<string, SearchPage>();
  private focused: number | null = null;
  /** Chats whose events a `chat.summary` said were skipped: reloaded when focused. */
  private skipped = new Set<number>();
  private listeners = new Map<keyof RealtimeEvents, Set<(value: any) => void>>();
  private readonly timers: Timers;
  private readonly now: () => number;
  private readonly newId: () => string;
  private readonly requests: Requests;
  private readonly sync: Syncer;

  constructor(private readonly opts: RealtimeOptions) {
    this.cache = opts.cache ?? new MessageCache();
    this.timers = opts.timers ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h) };
    this.now = opts.now ?? Date.now;
    this.newId = opts.newId ?? uuid;
    const timers = this.timers;
    this.requests = new Requests({
      transmit: (text) => (this.state === "open" && this.ws ? (this.ws.send(text), true) : false),
      open: () => this.state === "open",
      maxFrameBytes: () => this.ready?.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      setTimeout: (f, ms) => timers.setTimeout(f, ms),
      clearTimeout: (h) => timers.clearTimeout(h),
    });
    this.sync = new Syncer({
      cache: this.cache,
      request: (payload) => this.request("sync.request", payload),
      replay: (frame) => this.onEvent(frame, false),
      report: (frame) => this.emit("frame", { frame, live: false }),
      reload: (chatId) => (this.emit("chat", chatId), this.emit("reload", chatId)),
      gone: (chatId) => this.emit("gone", chatId),
      stale: () => this.emit("stale", null),
      setTimeout: (f, ms) => timers.setTimeout(f, ms),
      clearTimeout: (h) => timers.clearTimeout(h),
    });
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
    for (const m of this.cache.unsent()) if (!this.requests.has(m.clientId!)) this.sendWrite(m);
    void this.connect();
  }

  stop(): void {
    this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      detach(ws);
      ws.close(1000, "client stopped");
    }
    this.disconnected(false);
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
    ws.onclose = (ev) => this.onClose(ws, ev.code);
    ws.onerror = () => {};
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.state === "stopped") return;
    const delay = backoffDelay(this.attempt++, this.opts.backoff ?? DEFAULT_BACKOFF, this.opts.random);
    this.setState("reconnecting");
    this.reconnectTimer = this.timers.setTimeout(() => void this.connect(), delay);
  }

  /** What every ended connection leaves behind: requests, syncs and trust. */
  private disconnected(tooLarge: boolean): void {
    this.ready = null;
    this.stopHeartbeat();
    this.requests.suspend(tooLarge);
    this.sync.reset();
    this.cache.distrustAll();
  }

  private onClose(ws: SocketLike, code: number): void {
    if (ws !== this.ws) return;
    const readyAt = this.readyAt;
    this.readyAt = null;
    if (readyAt !== null && this.now() - readyAt >= STABLE_MS) this.attempt = 0;
    detach(ws);
    this.ws = null;
    this.disconnected(code === 1009);
    if (code === 4001) return this.setState("replaced");
    if (code === 4401 || (readyAt === null && this.attempt >= 1)) {
      // An expired token or a revoked session: a refresh tells them apart.
      this.setState("reconnecting");
      this.opts.api.refresh().then(
        () => this.scheduleReconnect(),
        (e) => (e instanceof ApiError && e.status === 401 ? this.signedOut() : this.scheduleReconnect()),
      );
      return;
    }
    this.scheduleReconnect();
  }

  private signedOut(): void {
    this.stop();
    this.setState("signed-out");
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
        return this.requests.settle(frame);
      case "sync.response":
        return this.sync.onChat(frame.payload);
      case "sync.user":
        return this.sync.onUser(frame.payload);
      case "search.results":
        this.searches.set(frame.payload.refId, frame.payload);
        return;
      case "token.refresh":
        void this.refreshToken();
        break;
      case "chat.summary":
        // A busy chat's events were skipped (summary mode): forget the
        // cached messages; the chat reloads its newest page (and the app
        // the chat itself: a chat.updated may be among them) when focused.
        if (frame.payload.newMessages > 0 || frame.payload.events > 0) {
          this.cache.clear(frame.payload.chatId);
          this.skipped.add(frame.payload.chatId);
          this.emit("chat", frame.payload.chatId);
        }
        break;
    }
    this.onEvent(frame, true);
  }

  /** A chat or user event, live or replayed by a sync. */
  private onEvent(frame: Frame, live: boolean): void {
    if (isChatEvent(frame.type)) {
      const result = this.cache.apply(frame, live ? "live" : "sync");
      if (result === "gap") return this.sync.gap(frame.payload.chatId);
      if (result !== "applied") return;
      this.emit("chat", frame.payload.chatId);
    } else {
      if (frame.id && this.seen.has(frame.id)) return;
      if (frame.id) remember(this.seen, frame.id);
      if (typeof frame.payload?.userEventId === "string") this.sync.advanceUser(frame.payload.userEventId);
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
    this.readyAt = this.now();
    const since = this.sync.userCursor;
    if (!since) this.sync.userCursor = ready.userEventId;
    this.setState("open");
    this.startHeartbeat(ready.heartbeatIntervalMs);
    this.emit("ready", { ready, reconnect });
    for (const id of this.cache.chatIds()) if (!ready.chats.includes(id)) this.cache.drop(id);
    this.sync.chats(this.cache.chatIds(), since ?? undefined);
    if (this.focused !== null) this.request("chat.focus", { chatId: this.focused }).catch(() => {});
    // Writes that waited for this connection (seed §6.5: sent on reconnect).
    this.requests.resume();
  }

  // --- requests -----------------------------------------------------------

  /**
   * Sends a client frame; resolves with the ack's payload, rejects with a
   * RealtimeError on an `error` frame (or "disconnected"). Writes are kept
   * and retried until answered; other frames need an open connection.
   */
  request<T = any>(type: string, payload: object, id: string = this.newId()): Promise<T> {
    return this.requests.request<T>(type, payload, id);
  }

  // --- writes -------------------------------------------------------------

  /**
   * Sends a message optimistically: it is in the cache at once ("sending"),
   * then "sent" or "failed". Returns its client id (the frame id).
   */
  send(chatId: number, content: string, opts: { replyTo?: number | null; mentions?: number[]; priority?: "normal" | "urgent" } = {}): string {
    const clientId = this.newId();
    const me = this.opts.api.session?.user.id ?? 0;
    const m = this.cache.addPending(chatId, clientId, me, content, opts.replyTo ?? null, opts.mentions ?? []);
    this.emit("chat", chatId);
    this.sendWrite(m, opts.priority);
    return clientId;
  }

  /** Sends a failed message again, with the same id. */
  retry(chatId: number, clientId: string): void {
    const m = this.cache.pendingMessage(chatId, clientId);
    if (!m) return;
    this.cache.setPendingStatus(chatId, clientId, "sending");
    this.emit("chat", chatId);
    this.sendWrite(m);
  }

  private sendWrite(m: CachedMessage, priority?: string): void {
    const { chatId, clientId, content, replyTo, mentions } = m;
    const payload: Record<string, unknown> = { chatId, content, mentions };
    if (replyTo) payload.replyTo = replyTo;
    if (priority) payload.priority = priority;
    this.cache.save();
    this.request<{ messageId: number; seq: number }>("message.send", payload, clientId!)
      .then(
        (ack) => this.cache.confirm(chatId, clientId!, ack.messageId, ack.seq),
        (e: RealtimeError) => {
          this.cache.setPendingStatus(chatId, clientId!, "failed", e.message);
          this.emit("refused", { chatId, clientId: clientId!, code: e.code });
        },
      )
      .finally(() => {
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
    return this.optimistic(chatId, messageId, (m) => ({ reactions: toggledReaction(m.reactions ?? [], emoji, me, action) }), "message.react", { messageId, emoji, action });
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
    if (chatId !== null && this.skipped.delete(chatId)) this.emit("reload", chatId);
  }

  setPresence(status: Exclude<PresenceStatus, "offline">): Promise<{ presence: PresenceStatus }> {
    return this.request("presence.update", { status });
  }

  /** `presence.subscribe`; subscriptions lapse with the connection and after 10 minutes: renew them. */
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
        this.onClose(ws, 4000);
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

/** Keeps the last 4096 frame ids. */
function remember(seen: Set<string>, id: string): void {
  seen.add(id);
  if (seen.size > 4096) seen.delete(seen.values().next().value as string);
}
