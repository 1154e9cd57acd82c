// The chat list: every chat I am in with its unread and mention badges,
// the totals, presence dots of direct chats, and the buttons that create,
// browse and invite. Tab reaches the list; Up/Down/Home/End move within it.
import { h, replace, type Child } from "./dom.js";
import type { ChatEntry, Store } from "./store.js";
import { presenceDot } from "./presence.js";

export interface SidebarActions {
  open(chatId: number): void;
  newChat(): void;
  browseChannels(): void;
  invite(): void;
}

export function mountSidebar(el: HTMLElement, store: Store, actions: SidebarActions): void {
  const totals = h("span", { class: "totals", "data-testid": "totals" });
  const list = h("ul", { class: "chat-list", "aria-label": "Chats" });
  const canInvite = store.me.role === "owner" || store.me.role === "admin";
  replace(
    el,
    h(
      "div",
      { class: "sidebar-head" },
      h("h2", { id: "chats-heading" }, "Chats ", totals),
    ),
    h(
      "div",
      { class: "sidebar-actions" },
      h("button", { type: "button", onclick: actions.newChat }, "New chat"),
      h("button", { type: "button", onclick: actions.browseChannels }, "Browse channels"),
      canInvite ? h("button", { type: "button", onclick: actions.invite }, "Invite people") : null,
    ),
    list,
  );
  el.setAttribute("aria-labelledby", "chats-heading");

  list.addEventListener("keydown", (ev) => {
    const buttons = [...list.querySelectorAll<HTMLButtonElement>("button.chat-item")];
    const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
    if (i < 0) return;
    let next = -1;
    if (ev.key === "ArrowDown") next = Math.min(buttons.length - 1, i + 1);
    else if (ev.key === "ArrowUp") next = Math.max(0, i - 1);
    else if (ev.key === "Home") next = 0;
    else if (ev.key === "End") next = buttons.length - 1;
    if (next >= 0) {
      ev.preventDefault();
      buttons[next]!.focus();
    }
  });

  // One row per chat, kept across renders and updated in place: the list
  // re-renders on every badge, and a row replaced between a press and its
  // release would swallow the click (e2e/20-badges).
  const rows = new Map<number, HTMLLIElement>();
  const render = () => {
    replace(
      totals,
      store.unreadTotal
        ? h("span", { class: "badge", title: "unread messages in all chats" }, String(store.unreadTotal), h("span", { class: "sr-only" }, " unread"))
        : null,
      store.mentionTotal
        ? h("span", { class: "badge mention", title: "unread mentions in all chats" }, `@${store.mentionTotal}`, h("span", { class: "sr-only" }, " mentions"))
        : null,
    );
    const chats = store.orderedChats();
    const shown = new Set(chats.map((c) => c.id));
    for (const id of [...rows.keys()]) if (!shown.has(id)) rows.delete(id);
    const next = chats.map((c) => row(rows, store, c, actions));
    if (!next.length) replace(list, h("li", { class: "empty" }, "No chats yet: start one with New chat."));
    else if (list.children.length !== next.length || next.some((li, i) => list.children[i] !== li)) {
      // New rows or a new order: the rows move (focus goes with its button).
      const focused = document.activeElement;
      replace(list, next);
      if (focused instanceof HTMLElement && list.contains(focused)) focused.focus();
    }
    document.title = store.unreadTotal ? `(${store.unreadTotal}) Fechatter` : "Fechatter";
  };
  store.on("chats", render);
  store.on("current", render);
  store.on("presence", render);
  render();
}

/** The row of chat `c`, made once and brought up to date. */
function row(rows: Map<number, HTMLLIElement>, store: Store, c: ChatEntry, actions: SidebarActions): HTMLLIElement {
  let li = rows.get(c.id);
  if (!li) {
    li = h("li", { "data-chat-id": String(c.id) }, h("button", { type: "button", class: "chat-item", onclick: () => actions.open(c.id) }));
    rows.set(c.id, li);
  }
  li.className = c.unreadCount ? "unread" : "";
  const button = li.firstElementChild as HTMLButtonElement;
  if (store.currentChatId === c.id) button.setAttribute("aria-current", "page");
  else button.removeAttribute("aria-current");
  replace(button, content(store, c));
  return li;
}

/** What a chat's row shows: kind or presence, title, pin, badges. */
function content(store: Store, c: ChatEntry): Child[] {
  const label = c.type === "single" ? "direct" : c.type === "group" ? "group" : c.type === "private_channel" ? "private" : "public";
  return [
    c.type === "single" && c.otherUserId !== null ? presenceDot(store, c.otherUserId) : h("span", { class: "kind", "aria-hidden": "true" }, c.type === "private_channel" ? "◆" : c.type === "public_channel" ? "○" : c.type === "group" ? "◎" : "•"),
    h("span", { class: "chat-title" }, c.title),
    h("span", { class: "sr-only" }, ` (${label})`),
    c.pinned ? h("span", { class: "pin", title: "pinned" }, "pinned") : null,
    c.mentionCount
      ? h("span", { class: "badge mention", "data-testid": "mention-badge" }, `@${c.mentionCount}`, h("span", { class: "sr-only" }, " mentions"))
      : null,
    c.unreadCount
      ? h("span", { class: "badge", "data-testid": "unread-badge" }, String(c.unreadCount), h("span", { class: "sr-only" }, " unread"))
      : null,
  ];
}
