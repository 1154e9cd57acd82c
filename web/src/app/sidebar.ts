// The chat list: every chat I am in with its unread and mention badges,
// the totals, presence dots of direct chats, and the buttons that create,
// browse and invite. Tab reaches the list; Up/Down/Home/End move within it.
import { h, replace } from "./dom.js";
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

  const render = () => {
    const focusedId = (document.activeElement as HTMLElement | null)?.closest?.("li")?.dataset["chatId"];
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
    replace(list, chats.length ? chats.map((c) => item(store, c, actions)) : h("li", { class: "empty" }, "No chats yet: start one with New chat."));
    if (focusedId) list.querySelector<HTMLButtonElement>(`li[data-chat-id="${focusedId}"] button`)?.focus();
    document.title = store.unreadTotal ? `(${store.unreadTotal}) Fechatter` : "Fechatter";
  };
  store.on("chats", render);
  store.on("current", render);
  store.on("presence", render);
  render();
}

function item(store: Store, c: ChatEntry, actions: SidebarActions): HTMLElement {
  const current = store.currentChatId === c.id;
  const label = c.type === "single" ? "direct" : c.type === "group" ? "group" : c.type === "private_channel" ? "private" : "public";
  return h(
    "li",
    { "data-chat-id": String(c.id), class: c.unreadCount ? "unread" : "" },
    h(
      "button",
      {
        type: "button",
        class: "chat-item",
        "aria-current": current ? "page" : false,
        onclick: () => actions.open(c.id),
      },
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
    ),
  );
}
