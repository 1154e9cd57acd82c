// Entry point: picks the screen from the URL and the stored session —
// the sign-up verification link (/signup/verify#token=…), an invite link
// (/invite#token=… or #invite=…, pre-fills the sign-up form), the sign-in screen, or the app.
// Tokens are kept per tab (sessionStorage) and in localStorage for new
// tabs, so two windows of one browser can be two users; tabs of one
// session share refreshed tokens through localStorage.
import { Api, type TokenStore } from "../client/api.js";
import type { Session } from "../client/types.js";
import { renderApp } from "./app_view.js";
import { renderAuth, renderVerify } from "./auth_view.js";

const KEY = "fechatter.session";

class BrowserTokenStore implements TokenStore {
  private session: Session | null;
  constructor() {
    this.session = read(sessionStorage) ?? read(localStorage);
  }
  load(): Session | null {
    // Another tab of the same session may have rotated the tokens: take the
    // newer pair, else this tab would present a used refresh token (reuse
    // detection ends the session).
    const shared = read(localStorage);
    if (shared && this.session && shared.sessionId === this.session.sessionId && shared.expiresAt > this.session.expiresAt) {
      this.session = shared;
    }
    return this.session;
  }
  save(session: Session | null): void {
    this.session = session;
    for (const storage of [sessionStorage, localStorage]) {
      try {
        if (session) storage.setItem(KEY, JSON.stringify(session));
        else storage.removeItem(KEY);
      } catch {
        // Storage full or disabled: the session lives in memory.
      }
    }
  }
}

function read(storage: Storage): Session | null {
  try {
    const raw = storage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

const root = document.getElementById("app")!;
const api = new Api({ baseUrl: "", store: new BrowserTokenStore() });

function signedIn(session: Session): void {
  renderApp(root, api, session, async () => {
    root.dispatchEvent(new Event("fechatter:signout"));
    await api.logout();
    history.replaceState(null, "", "/");
    showAuth(null);
  });
}

function showAuth(inviteToken: string | null): void {
  renderAuth(root, { api, inviteToken, onSignedIn: signedIn });
}

function route(): void {
  const hash = new URLSearchParams(location.hash.slice(1));
  const path = location.pathname.replace(/\/$/, "");
  // The mailed sign-up link: /signup/verify#token=…
  if (path === "/signup/verify" && hash.get("token")) return void renderVerify(root, api, hash.get("token")!, signedIn);
  // Invite links: /invite#token=… (docs/protocol.md) or /#invite=…
  const invite = path === "/invite" ? hash.get("token") : hash.get("invite");
  if (invite) return showAuth(invite);
  const session = api.session;
  if (session) signedIn(session);
  else showAuth(null);
}

api.onSession = (session) => {
  if (!session && root.dataset["signedIn"]) {
    delete root.dataset["signedIn"];
    root.dispatchEvent(new Event("fechatter:signout"));
    showAuth(null);
  }
};
route();
