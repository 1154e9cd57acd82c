// Test doubles of the browser environment the library runs in: timers, a
// WebSocket and the HTTP origin. (The library's real counterpart, the pool
// through HAProxy in a real browser, is exercised by web/e2e.)
import { Api, MemoryTokenStore } from "../src/client/api.js";
import type { SocketLike, Timers } from "../src/client/realtime.js";
import type { AuthResponse, Frame } from "../src/client/types.js";

export class FakeTimers implements Timers {
  now = 0;
  private next = 1;
  private due = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): number {
    const id = this.next++;
    this.due.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(id: any): void {
    this.due.delete(id);
  }
  /** Runs every timer due within `ms`, in time order, letting promises settle between them. */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const [id, t] = [...this.due.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0] ?? [];
      if (!t) break;
      this.due.delete(id!);
      this.now = t.at;
      t.fn();
      await flush();
    }
    this.now = end;
    await flush();
  }
  pending(): number {
    return this.due.size;
  }
}

export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

export class FakeSocket implements SocketLike {
  readyState = 0;
  sent: Frame[] = [];
  closedWith: number | null = null;
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: any }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000): void {
    this.closedWith = code;
  }
  /** The server sends a frame. */
  receive(type: string, payload: any, id = `s-${Math.random()}`): void {
    this.onmessage?.({ data: JSON.stringify({ type, id, timestamp: new Date(0).toISOString(), payload }) });
  }
  /** The server closes the connection. */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  ack(refId: string, payload: any = {}): void {
    this.receive("ack", { refId, status: "ok", ...payload });
  }
  ofType(type: string): Frame[] {
    return this.sent.filter((f) => f.type === type);
  }
}

export function ready(chats: number[] = [], userEventId = "0-0", extra: object = {}) {
  return {
    userId: 1,
    sessionId: "s",
    connectionId: 1,
    instance: "gw1",
    chats,
    heartbeatIntervalMs: 30_000,
    maxFrameBytes: 65536,
    tokenExpiresAt: new Date(0).toISOString(),
    userEventId,
    unreadTotal: 0,
    mentionTotal: 0,
    ...extra,
  };
}

export function auth(n: number, expiresIn = 900): AuthResponse {
  return {
    accessToken: `access-${n}`,
    refreshToken: `refresh-${n}`,
    expiresIn,
    sessionId: "s",
    user: { id: 1, fullname: "Ada", email: "ada@acme.test", workspaceId: 1, role: "owner", active: true },
  };
}

export interface Call {
  method: string;
  path: string;
  auth: string | null;
  body: any;
}

/** An HTTP origin answering by "METHOD /path" with a handler; records calls. */
export function fakeOrigin(routes: Record<string, (call: Call, n: number) => [number, any]>) {
  const calls: Call[] = [];
  const fakeFetch = (async (url: string, init: any): Promise<Response> => {
    const u = new URL(url, "http://origin.test");
    const call: Call = {
      method: init.method,
      path: u.pathname + u.search,
      auth: init.headers?.Authorization ?? null,
      body: init.body ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    const route = routes[`${call.method} ${u.pathname}`];
    if (!route) return new Response(JSON.stringify({ error: { code: "not_found", message: "no route" } }), { status: 404 });
    const n = calls.filter((c) => c.method === call.method && c.path.split("?")[0] === u.pathname).length;
    const [status, body] = route(call, n);
    if (status === 0) throw new TypeError("fetch failed");
    return new Response(status === 204 ? null : JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  }) as unknown as typeof globalThis.fetch;
  return { fetch: fakeFetch, calls };
}

export function signedInApi(fetch: typeof globalThis.fetch, timers: FakeTimers, expiresIn = 900): Api {
  const store = new MemoryTokenStore();
  const a = auth(1, expiresIn);
  store.save({ accessToken: a.accessToken, refreshToken: a.refreshToken, expiresAt: timers.now + expiresIn * 1000, sessionId: "s", user: a.user });
  return new Api({ baseUrl: "", store, fetch, now: () => timers.now });
}
