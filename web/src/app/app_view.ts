// The signed-in app: top bar (search, connection status, my status,
// notification settings, sign out), the chat list, the open chat and the
// toasts. It loads the directory and the chat list over REST, starts the
// live connection (live.ts) and routes between chats (#chat=<id>).
import type { Api } from "../client/api.js";
import type { Chat, Session } from "../client/types.js";
import { browseChannelsDialog, inviteDialog, newChatDialog } from "./chat_dialogs.js";
import { h, replace, windowFocused } from "./dom.js";
import { Live } from "./live.js";
import { mountChat } from "./message_view.js";
import { statusSelector } from "./presence.js";
import { searchBox } from "./search_view.js";
import { chatSettingsDialog, preferencesDialog } from "./settings_view.js";
import { mountSidebar } from "./sidebar.js";
import { Store } from "./store.js";
import { Toasts } from "./toasts.js";

export function renderApp(root: HTMLElement, api: Api, session: Session, signOut: () => void): void {
  const store = new Store(session.user);
  let unmountChat: (() => void) | null = null;

  const toasts = new Toasts((chatId) => void open(chatId));
  const live = new Live(api, store, {
    toast: (t) => {
      if (t.chatId === store.currentChatId && windowFocused()) return;
      toasts.show(t);
    },
    chatsChanged: () => void reloadChats(),
    removedFrom: (chatId) => {
      if (store.currentChatId === chatId) showNoChat();
    },
    // Reload the chat and its members (once within 5 s: sends queued while
    // offline are refused one by one).
    chatStale: (chatId) => throttled(`stale:${chatId}`, () => Promise.all([refreshChat(chatId), loadMembers(chatId)]).then(() => {})),
  });

  // Every window listener goes with the session (sign-out aborts them).
  const listening = new AbortController();
  const signal = listening.signal;
  const connection = h("span", { class: "connection", "data-testid": "connection", role: "status" });
  // Seed §6.5: say that writes wait for the connection; 4001 needs the user.
  const banner = h("div", { class: "banner", role: "status", "data-testid": "banner" });
  const renderConnection = () => {
    const { state, instance } = store.connection;
    connection.className = `connection ${state}`;
    connection.textContent =
      state === "connected" ? `connected (${instance ?? "?"})` : state === "reconnecting" ? "reconnecting…" : state === "offline" || state === "replaced" ? "offline" : "connecting…";
    banner.replaceChildren();
    banner.hidden = state === "connected" || state === "connecting";
    if (state === "reconnecting") banner.append("You're offline. Messages will be sent when you reconnect.");
    if (state === "replaced") {
      banner.append(
        "Disconnected: this account opened too many connections elsewhere. ",
        h("button", { type: "button", onclick: () => live.reconnect() }, "Reconnect"),
      );
    }
  };
  store.on("connection", renderConnection);
  renderConnection();

  const sidebar = h("nav", { class: "sidebar", "aria-label": "Chats" });
  const pane = h("main", { class: "pane", id: "pane" });
  replace(
    root,
    h(
      "div",
      { class: "shell" },
      h(
        "header",
        { class: "topbar" },
        h("h1", null, "Fechatter"),
        searchBox(api, store, (chatId, seq) => void open(chatId, { seq })),
        h("span", { class: "spacer" }),
        connection,
        statusSelector(store, (status) => live.setStatus(status)),
        h("button", { type: "button", onclick: () => void preferencesDialog(api) }, "Notification settings"),
        h("span", { class: "me" }, session.user.fullname),
        h("button", { type: "button", onclick: signOut }, "Sign out"),
      ),
      banner,
      sidebar,
      pane,
    ),
    toasts.el,
  );

  const opened = (chat: Chat) => {
    store.upsertChat(chat);
    void loadMembers(chat.id);
    open(chat.id);
  };
  mountSidebar(sidebar, store, {
    open: (id) => open(id),
    newChat: () => newChatDialog(api, store, opened),
    browseChannels: () => browseChannelsDialog(api, opened),
    invite: () => inviteDialog(api),
  });

  function showNoChat(): void {
    unmountChat?.();
    unmountChat = null;
    store.currentChatId = null;
    live.focusChat(null);
    store.emit("current");
    replace(pane, h("div", { class: "pane-empty" }, h("p", null, "Pick a chat on the left, or start one with New chat.")));
  }

  async function open(chatId: number, target?: { seq: number }): Promise<void> {
    const known = store.chats.has(chatId);
    if (!known) {
      try {
        store.upsertChat(await api.chat(chatId));
      } catch {
        return;
      }
    }
    unmountChat?.();
    store.currentChatId = chatId;
    store.emit("current");
    if (location.hash !== `#chat=${chatId}`) history.replaceState(null, "", `#chat=${chatId}`);
    toasts.clearChat(chatId);
    live.focusChat(windowFocused() ? chatId : null);
    unmountChat = mountChat(
      pane,
      store,
      live,
      chatId,
      {
        settings: (id) =>
          void chatSettingsDialog(api, id, store.chats.get(id)?.title ?? "chat", (s) => {
            store.setPinned(id, s.pinned);
          }),
        refreshMembers: (id) => throttled(`members:${id}`, () => loadMembers(id)),
      },
      target,
    );
    void loadMembers(chatId);
    if (known) recheckChannel(chatId);
  }

  /** The chat object again, for its `readOnly` and `ownerId` (see recheckChannel). */
  async function refreshChat(chatId: number): Promise<void> {
    const fresh = await api.chat(chatId);
    if (store.chats.has(chatId)) store.upsertChat(fresh);
  }

  /**
   * A channel made read-only (or no longer so) and an ownership transfer
   * decide whether I may post (posting.ts). Live, `chat.updated` brings
   * them (live.ts); a chat opened again is reloaded too (at most every
   * 5 s), since a chat in summary mode skipped its events while it was not
   * focused.
   */
  function recheckChannel(chatId: number): void {
    const type = store.chats.get(chatId)?.type;
    if (type === "public_channel" || type === "private_channel") throttled(`chat:${chatId}`, () => refreshChat(chatId));
  }

  async function loadMembers(chatId: number): Promise<void> {
    try {
      store.setMembers(chatId, await api.members(chatId));
      live.watch((store.members.get(chatId) ?? []).map((m) => m.userId));
    } catch {
      // Not a member any more: the list reload drops the chat.
    }
  }

  async function reloadChats(): Promise<void> {
    const chats = await api.chats();
    store.setChats(chats);
    // Direct chats are named after the other member; unnamed groups after theirs.
    const needMembers = chats.filter((c) => (c.type === "single" || !c.name) && !store.members.has(c.id));
    await Promise.all(needMembers.map((c) => loadMembers(c.id)));
    const others = [...store.chats.values()].flatMap((c) => (c.otherUserId !== null ? [c.otherUserId] : []));
    live.watch(others);
    void loadPins(chats.map((c) => c.id));
    if (store.currentChatId !== null && !store.chats.has(store.currentChatId)) showNoChat();
  }

  let pinsLoaded = false;
  async function loadPins(ids: number[]): Promise<void> {
    if (pinsLoaded) return;
    pinsLoaded = true;
    const settings = await Promise.all(ids.slice(0, 50).map((id) => api.chatSettings(id).catch(() => null)));
    let changed = false;
    for (const s of settings) {
      const c = s && store.chats.get(s.chatId);
      if (c && s.pinned) {
        c.pinned = true;
        changed = true;
      }
    }
    if (changed) store.emit("chats");
  }

  // Someone new (joined after the directory loaded): reload it, at most every 5 s.
  store.onUnknownUser = () =>
    throttled("users", async () => {
      store.setUsers(await api.users());
    });

  const start = async () => {
    try {
      store.setUsers(await api.users());
      await reloadChats();
    } catch {
      // The live connection's first (re)connect reloads the list again.
    }
    live.start();
    const m = /^#chat=(\d+)$/.exec(location.hash);
    if (m && store.chats.has(Number(m[1]))) void open(Number(m[1]));
    else showNoChat();
  };
  void start();

  window.addEventListener(
    "hashchange",
    () => {
      const m = /^#chat=(\d+)$/.exec(location.hash);
      if (m && Number(m[1]) !== store.currentChatId) void open(Number(m[1]));
    },
    { signal },
  );
  // The skip link moves focus without touching the #chat= route.
  document.querySelector(".skip-link")?.addEventListener(
    "click",
    (e) => {
      e.preventDefault();
      document.getElementById("composer")?.focus();
    },
    { signal },
  );
  // Reloaded list and directory on each (re)connect: membership and names may have changed.
  live.onConnected = async () => {
    try {
      store.setUsers(await api.users());
      await reloadChats();
    } catch {
      // Try again on the next connect.
    }
  };
  // chat.focus follows the window: a chat in a window in the background gets toasts and badges.
  const refocus = () => live.focusChat(windowFocused() ? store.currentChatId : null);
  window.addEventListener("focus", refocus, { signal });
  window.addEventListener("blur", refocus, { signal });
  document.addEventListener("visibilitychange", refocus, { signal });
  window.addEventListener("beforeunload", () => live.stop(), { signal });
  // Reading and clicking count as activity (docs/protocol.md, Presence): a
  // frame at most every 2 minutes while the user does something here.
  let lastActive = Date.now();
  const active = () => {
    if (Date.now() - lastActive < 120_000) return;
    lastActive = Date.now();
    live.touch();
  };
  window.addEventListener("keydown", active, { passive: true, signal });
  window.addEventListener("pointerdown", active, { passive: true, signal });
  (window as unknown as { fechatter: unknown }).fechatter = { store, live };
  root.dataset["signedIn"] = String(session.user.id);
  root.addEventListener(
    "fechatter:signout",
    () => {
      listening.abort();
      live.forget();
    },
    { once: true },
  );
}

const lastRun = new Map<string, number>();
/** Runs `fn` unless it ran under `key` within the last 5 s. */
function throttled(key: string, fn: () => Promise<void>): void {
  const now = Date.now();
  if (now - (lastRun.get(key) ?? 0) < 5000) return;
  lastRun.set(key, now);
  void fn().catch(() => {});
}
