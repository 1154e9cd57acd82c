// The contract of a Realtime connection: what it is built from (socket,
// timers, clock: the browser's by default, fakes in unit tests) and what
// it tells its listeners.
import type { Api } from "./api.js";
import type { BackoffPolicy } from "./backoff.js";
import type { MessageCache } from "./cache.js";
import type { Frame, SessionReady } from "./types.js";

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "replaced" | "signed-out" | "stopped";

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
  now?: () => number;
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
  /** The user stream no longer holds what was missed: reload the chat list. */
  stale: null;
  /**
   * The server refused a `message.send` (the message is now "failed"):
   * `code` is the error frame's, e.g. `forbidden` for a plain member of a
   * read-only channel (the flag or the member's role changed).
   */
  refused: { chatId: number; clientId: string; code: string };
}
