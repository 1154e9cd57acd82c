// Gap-fill (docs/protocol.md "Sync" and "User events"; seed 002 §6.3):
// what the cache of each chat, and the user's event stream, missed while
// the client was away or when a live gap shows.
//
// * One `sync.request` names every chat to fill with its cursor; the
//   follow-up pages of all chats answered `hasMore` go out together in one
//   request once the previous one is acked (the server limits sync
//   requests: burst 10, then one per 2 s).
// * A chat is "syncing" from its request until its last page: a gap seen
//   meanwhile is synced again right after, from the cursor it reached.
// * A refused request is retried: after `retryAfterMs` when rate limited,
//   otherwise with backoff, MAX_FAILURES times before waiting for the next
//   gap or connection. Timers die with the connection (`reset`).
// * A chat answered without `hasMore` is "trusted": live events after its
//   cursor are contiguous from then on (cache.ts).
// * Replayed user-stream badges are not passed on: badges are state, and
//   each chat's `sync.response` carries its current one.
import { backoffDelay } from "./backoff.js";
import { compareEventIds, type MessageCache } from "./cache.js";
import type { Frame } from "./types.js";

export const MAX_CHATS_PER_REQUEST = 200;
export const MAX_FAILURES = 5;

export interface SyncHost {
  cache: MessageCache;
  /** Sends `sync.request`; resolves on its ack, rejects with {code, retryAfterMs}. */
  request(payload: object): Promise<unknown>;
  /** A replayed chat or user event, in order. */
  replay(frame: Frame): void;
  /** A badge or receipt a sync reported, as a frame. */
  report(frame: Frame): void;
  /** A chat the cache lost track of (tooLarge): reload it over REST. */
  reload(chatId: number): void;
  /** A chat the user is no longer in. */
  gone(chatId: number): void;
  /** The user stream no longer holds what was missed: reload the chat list. */
  stale(): void;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export class Syncer {
  /** The newest user-stream event handled (live or replayed). */
  userCursor: string | null = null;
  private syncing = new Set<number>();
  private again = new Set<number>();
  private followUps = new Map<number, string>();
  private userFollowUp: string | null = null;
  private retryTimer: unknown = null;
  private failures = 0;

  constructor(private readonly host: SyncHost) {}

  /** Forgets requests in flight and their timers (the connection closed). */
  reset(): void {
    this.host.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.syncing.clear();
    this.again.clear();
    this.followUps.clear();
    this.userFollowUp = null;
    this.failures = 0;
  }

  /** Fills these chats from their cursors, and the user stream from `user`. */
  chats(chatIds: number[], user?: string): void {
    const cursors = new Map<number, string | number>();
    for (const id of chatIds) if (!this.syncing.has(id)) cursors.set(id, this.host.cache.cursor(id));
    this.send(cursors, user ?? null);
  }

  /** A live event of `chatId` showed a gap. */
  gap(chatId: number): void {
    if (this.syncing.has(chatId)) this.again.add(chatId);
    else this.chats([chatId]);
  }

  /** A newer user-stream id was seen. */
  advanceUser(id: string): void {
    if (!this.userCursor || compareEventIds(id, this.userCursor) > 0) this.userCursor = id;
  }

  private send(cursors: Map<number, string | number>, user: string | null): void {
    const ids = [...cursors.keys()];
    for (let i = 0; i < ids.length || (i === 0 && user); i += MAX_CHATS_PER_REQUEST) {
      const chunk = ids.slice(i, i + MAX_CHATS_PER_REQUEST);
      const payload: { chats?: Record<string, string | number>; user?: string } = {};
      if (chunk.length) payload.chats = Object.fromEntries(chunk.map((id) => [String(id), cursors.get(id)!]));
      if (user && i === 0) payload.user = user;
      chunk.forEach((id) => this.syncing.add(id));
      this.host.request(payload).then(
        () => this.acked(chunk),
        (e: { code?: string; retryAfterMs?: number }) => this.refused(chunk, payload.user ?? null, e),
      );
    }
  }

  /** Every page of the request arrived: send the follow-ups, then the re-syncs. */
  private acked(chats: number[]): void {
    this.failures = 0;
    for (const id of chats) if (!this.followUps.has(id)) this.syncing.delete(id);
    const next = new Map<number, string | number>(this.followUps);
    const user = this.userFollowUp;
    this.followUps.clear();
    this.userFollowUp = null;
    if (next.size || user) this.send(next, user);
    const again = [...this.again].filter((id) => !this.syncing.has(id));
    again.forEach((id) => this.again.delete(id));
    if (again.length) this.chats(again);
  }

  private refused(chats: number[], user: string | null, e: { code?: string; retryAfterMs?: number }): void {
    chats.forEach((id) => this.syncing.delete(id));
    if (e.code === "disconnected" || this.failures >= MAX_FAILURES) return;
    const delay = e.code === "rate_limited" ? (e.retryAfterMs ?? 1000) : backoffDelay(this.failures);
    this.failures += 1;
    this.host.clearTimeout(this.retryTimer);
    this.retryTimer = this.host.setTimeout(() => this.chats(chats, user ?? undefined), delay);
  }

  /** One chat's page of a `sync.response`. */
  onChat(p: any): void {
    const chatId: number = p.chatId;
    if (p.error) {
      this.host.cache.drop(chatId);
      return this.host.gone(chatId);
    }
    if (p.tooLarge) {
      this.host.cache.clear(chatId);
      return this.host.reload(chatId);
    }
    for (const event of p.events ?? []) this.host.replay(event);
    const timestamp = new Date().toISOString();
    if (p.badge) this.host.report({ type: "notification.badge", id: "", timestamp, payload: { chatId, ...p.badge } });
    for (const r of p.readReceipts ?? []) {
      this.host.report({ type: "read.receipt", id: "", timestamp, payload: { chatId, ...r } });
    }
    if (p.hasMore) this.followUps.set(chatId, p.cursor);
    else this.host.cache.trust(chatId);
  }

  /** A page of the user stream (`sync.user`). */
  onUser(p: any): void {
    if (p.tooLarge) return this.host.stale();
    for (const event of p.events ?? []) {
      if (event.type !== "notification.badge") this.host.replay(event);
      if (typeof event.payload?.userEventId === "string") this.advanceUser(event.payload.userEventId);
    }
    if (typeof p.cursor === "string" && p.cursor !== "0-0") this.advanceUser(p.cursor);
    if (p.hasMore) this.userFollowUp = p.cursor;
  }
}
