// Client frames waiting for their answer (docs/protocol.md "Frames": every
// client frame is answered exactly once, `ack` or `error`, by `refId`).
//
// * Writes (sends, edits, deletes, reactions, read marks) stay until
//   answered, across connections: sent again with the same id every
//   RETRY_MS without an answer and as soon as a new connection is ready
//   (the server's idempotency makes that safe); refused as rate_limited or
//   unavailable they go again after `retryAfterMs`, MAX_REFUSALS times.
//   Other frames need an open connection and fail with "disconnected".
// * Sends of one chat go one at a time, in the order they were made (the
//   chat's lane): a refused or slow send holds the ones typed after it, so
//   messages commit in typing order even under the rate limit.
// * A frame larger than the connection's `maxFrameBytes` is refused here:
//   the server would close the connection (1009) and a retry would loop.
import type { Frame } from "./types.js";

export const RETRY_MS = 5000;
export const MAX_REFUSALS = 5;
const WRITES = new Set(["message.send", "message.edit", "message.delete", "message.react", "read.mark"]);

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

interface Pending {
  id: string;
  /** The frame as sent, every time (a retry is the same frame). */
  text: string;
  write: boolean;
  /** The chat whose send lane this send waits in (sends only). */
  lane: number | null;
  refusals: number;
  timer: unknown;
  sent: boolean;
  resolve(payload: any): void;
  reject(error: RealtimeError): void;
}

export interface RequestHost {
  /** Sends the frame text on the open connection; false when there is none. */
  transmit(text: string): boolean;
  open(): boolean;
  maxFrameBytes(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export class Requests {
  private pending = new Map<string, Pending>();
  private lanes = new Map<number, string[]>();
  /** The id of the frame sent last (a 1009 close refuses it). */
  private lastSent: string | null = null;

  constructor(private readonly host: RequestHost) {}

  has(id: string): boolean {
    return this.pending.has(id);
  }

  request<T>(type: string, payload: object, id: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const write = WRITES.has(type);
      if (!write && !this.host.open()) return reject(new RealtimeError("disconnected", "not connected"));
      const text = JSON.stringify({ type, id, timestamp: new Date().toISOString(), payload });
      const size = new TextEncoder().encode(text).length;
      if (size > this.host.maxFrameBytes()) {
        return reject(new RealtimeError("payload_too_large", `the frame is ${size} bytes, over the limit of ${this.host.maxFrameBytes()}`));
      }
      const lane = type === "message.send" ? (payload as { chatId: number }).chatId : null;
      const p: Pending = { id, text, write, lane, refusals: 0, timer: null, sent: false, resolve, reject };
      this.pending.set(id, p);
      if (lane !== null) {
        const queue = this.lanes.get(lane) ?? [];
        if (!queue.includes(id)) queue.push(id);
        this.lanes.set(lane, queue);
      }
      this.transmit(p);
    });
  }

  /** A new connection is ready: writes waiting for one go now. */
  resume(): void {
    for (const p of this.pending.values()) if (!p.sent) this.transmit(p);
  }

  /**
   * The connection closed: writes wait for the next one, other frames fail.
   * `tooLarge` (close 1009): the frame sent last is refused, not resent.
   */
  suspend(tooLarge: boolean): void {
    const last = tooLarge && this.lastSent ? this.pending.get(this.lastSent) : undefined;
    if (last) this.fail(last, new RealtimeError("payload_too_large", "the server refused the frame as too large"));
    for (const p of [...this.pending.values()]) {
      this.host.clearTimeout(p.timer);
      p.sent = false;
      if (!p.write) this.fail(p, new RealtimeError("disconnected", "the connection closed before an answer"));
    }
  }

  /** An `ack` or `error` frame. */
  settle(frame: Frame): void {
    const p = this.pending.get(frame.payload?.refId);
    if (!p) return;
    this.host.clearTimeout(p.timer);
    if (frame.type === "ack") {
      this.finish(p);
      return p.resolve(frame.payload);
    }
    const { code, message, retryAfterMs } = frame.payload;
    if (p.write && (code === "rate_limited" || code === "unavailable") && p.refusals < MAX_REFUSALS) {
      p.refusals += 1;
      p.timer = this.host.setTimeout(() => this.transmit(p), retryAfterMs ?? 1000);
      return;
    }
    this.fail(p, new RealtimeError(code, message, retryAfterMs));
  }

  private transmit(p: Pending): void {
    this.host.clearTimeout(p.timer);
    if (p.lane !== null && this.lanes.get(p.lane)?.[0] !== p.id) return;
    if (!this.host.transmit(p.text)) return;
    p.sent = true;
    this.lastSent = p.id;
    if (p.write) p.timer = this.host.setTimeout(() => this.transmit(p), RETRY_MS);
  }

  private fail(p: Pending, error: RealtimeError): void {
    this.host.clearTimeout(p.timer);
    this.finish(p);
    p.reject(error);
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
}
