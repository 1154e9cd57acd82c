// The REST half of the client: sign-up/in, tokens, and typed calls of
// docs/protocol.md. Tokens live in a TokenStore (localStorage in the app,
// memory in tests); the access token is refreshed before it expires
// (REFRESH_AHEAD_MS), one refresh at a time, and a call answered
// 401 token_expired is refreshed and retried once.
import type {
  AuthResponse,
  Chat,
  ChatMember,
  ChatNotificationSettings,
  ChatType,
  Invite,
  Message,
  NotificationPreferences,
  SearchPage,
  Session,
  User,
} from "./types.js";

/** Refresh the access token this long before it expires. */
export const REFRESH_AHEAD_MS = 60_000;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface TokenStore {
  load(): Session | null;
  save(session: Session | null): void;
}

export class MemoryTokenStore implements TokenStore {
  private session: Session | null = null;
  load(): Session | null {
    return this.session;
  }
  save(session: Session | null): void {
    this.session = session;
  }
}

export interface ApiOptions {
  /** Origin of the pool, e.g. "https://127.0.0.1:8443" ("" = same origin). */
  baseUrl: string;
  store: TokenStore;
  fetch?: typeof fetch;
  now?: () => number;
}

export type SignupBody = {
  fullname: string;
  email: string;
  password: string;
} & ({ workspace: string } | { inviteToken: string } | { workspaceId: number });

type Query = Record<string, string | number | boolean | undefined | null>;

export class Api {
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private refreshing: Promise<Session> | null = null;
  /** Called whenever the session changes (sign-in, refresh, sign-out). */
  onSession: (session: Session | null) => void = () => {};

  constructor(private readonly opts: ApiOptions) {
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.now = opts.now ?? Date.now;
  }

  get session(): Session | null {
    return this.opts.store.load();
  }

  get baseUrl(): string {
    return this.opts.baseUrl;
  }

  // --- sessions -----------------------------------------------------------

  async signup(body: SignupBody): Promise<Session> {
    const answer = await this.call<AuthResponse & { status?: string }>("POST", "/api/signup", body, false);
    if (!answer.accessToken) {
      throw new ApiError(202, "verification_sent", "check your e-mail for the sign-up link");
    }
    return this.adopt(answer);
  }

  async verifySignup(token: string): Promise<Session> {
    return this.adopt(await this.call<AuthResponse>("POST", "/api/signup/verify", { token }, false));
  }

  async signin(email: string, password: string): Promise<Session> {
    return this.adopt(await this.call<AuthResponse>("POST", "/api/signin", { email, password }, false));
  }

  /** Ends the session on the server (best effort) and forgets it here. */
  async logout(): Promise<void> {
    const session = this.session;
    try {
      if (session) await this.call("POST", "/api/logout", { refreshToken: session.refreshToken });
    } catch {
      // Signed out locally either way.
    } finally {
      this.forget();
    }
  }

  forget(): void {
    this.opts.store.save(null);
    this.onSession(null);
  }

  /**
   * A valid access token: the stored one, or a refreshed one when it
   * expires within REFRESH_AHEAD_MS. Concurrent callers share one refresh.
   */
  async accessToken(): Promise<string> {
    const session = this.session;
    if (!session) throw new ApiError(401, "unauthorized", "not signed in");
    if (session.expiresAt - this.now() > REFRESH_AHEAD_MS) return session.accessToken;
    return (await this.refresh()).accessToken;
  }

  /** Rotates the refresh token; a 401 answer signs out. */
  refresh(): Promise<Session> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<Session> {
    const session = this.session;
    if (!session) throw new ApiError(401, "unauthorized", "not signed in");
    try {
      const answer = await this.call<AuthResponse>(
        "POST",
        "/api/refresh",
        { refreshToken: session.refreshToken },
        false,
      );
      return this.adopt(answer);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) this.forget();
      throw e;
    }
  }

  private adopt(answer: AuthResponse): Session {
    const session: Session = {
      accessToken: answer.accessToken,
      refreshToken: answer.refreshToken,
      expiresAt: this.now() + answer.expiresIn * 1000,
      sessionId: answer.sessionId,
      user: answer.user,
    };
    this.opts.store.save(session);
    this.onSession(session);
    return session;
  }

  // --- the HTTP call ------------------------------------------------------

  /**
   * One REST call. With `auth`, sends the bearer token and, when the answer
   * is 401 token_expired, refreshes once and retries. Errors become
   * ApiError with the server's code; network failures ApiError(0, "network").
   */
  async call<T>(method: string, path: string, body?: unknown, auth = true, query?: Query): Promise<T> {
    const url = this.opts.baseUrl + path + queryString(query);
    const attempt = async (token?: string): Promise<Response> => {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (token) headers["Authorization"] = `Bearer ${token}`;
      try {
        return await this.fetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (e) {
        throw new ApiError(0, "network", `cannot reach the server: ${(e as Error).message}`);
      }
    };
    let response = await attempt(auth ? await this.accessToken() : undefined);
    if (auth && response.status === 401 && (await peekCode(response)) === "token_expired") {
      response = await attempt((await this.refresh()).accessToken);
    }
    return decode<T>(response);
  }

  // --- typed routes -------------------------------------------------------

  me(): Promise<User> {
    return this.call("GET", "/api/workspace/me");
  }
  users(): Promise<User[]> {
    return this.call("GET", "/api/users");
  }
  chats(): Promise<Chat[]> {
    return this.call("GET", "/api/chat");
  }
  chat(id: number): Promise<Chat> {
    return this.call("GET", `/api/chat/${id}`);
  }
  createChat(body: { type: ChatType; name?: string; description?: string; members: number[] }): Promise<Chat> {
    return this.call("POST", "/api/chat", body);
  }
  joinChat(id: number): Promise<Chat> {
    return this.call("POST", `/api/chat/${id}/join`);
  }
  members(id: number): Promise<ChatMember[]> {
    return this.call("GET", `/api/chat/${id}/members`);
  }
  addMembers(id: number, userIds: number[]): Promise<ChatMember[]> {
    return this.call("POST", `/api/chat/${id}/members`, { userIds });
  }
  leaveChat(id: number, userId: number): Promise<ChatMember[]> {
    return this.call("DELETE", `/api/chat/${id}/members`, { userIds: [userId] });
  }
  messages(
    id: number,
    page: { beforeSeq?: number; afterSeq?: number; limit?: number } = {},
  ): Promise<{ messages: Message[]; hasMore: boolean }> {
    return this.call("GET", `/api/chat/${id}/messages`, undefined, true, page);
  }
  createInvite(body: { email?: string; singleUse?: boolean; expiresInSecs?: number } = {}): Promise<Invite> {
    return this.call("POST", "/api/workspace/invites", body);
  }
  search(
    scope: "messages" | "people" | "chats",
    q: string,
    opts: { chatId?: number; includePublic?: boolean; limit?: number; cursor?: string } = {},
  ): Promise<SearchPage> {
    return this.call("GET", `/api/search/${scope}`, undefined, true, { q, ...opts });
  }
  preferences(): Promise<NotificationPreferences> {
    return this.call("GET", "/api/me/notification-preferences");
  }
  setPreferences(p: NotificationPreferences): Promise<NotificationPreferences> {
    return this.call("PUT", "/api/me/notification-preferences", p);
  }
  chatSettings(id: number): Promise<ChatNotificationSettings> {
    return this.call("GET", `/api/chat/${id}/notification-settings`);
  }
  setChatSettings(
    id: number,
    s: Partial<Omit<ChatNotificationSettings, "chatId">>,
  ): Promise<ChatNotificationSettings> {
    return this.call("PUT", `/api/chat/${id}/notification-settings`, s);
  }
}

function queryString(query?: Query): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null) params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

async function peekCode(response: Response): Promise<string | undefined> {
  try {
    return (await response.clone().json())?.error?.code;
  } catch {
    return undefined;
  }
}

async function decode<T>(response: Response): Promise<T> {
  if (response.status === 204) return undefined as T;
  let body: any = undefined;
  try {
    body = await response.json();
  } catch {
    // Not JSON (e.g. a proxy's HTML page).
  }
  if (response.ok) return body as T;
  const error = body?.error;
  throw new ApiError(
    response.status,
    error?.code ?? "http_" + response.status,
    error?.message ?? response.statusText ?? "request failed",
    error?.retryAfterMs,
  );
}
