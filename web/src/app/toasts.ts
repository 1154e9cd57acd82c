// Toasts for other chats: a live notification.toast frame shows one (a
// later toast of the same groupId replaces the earlier one); clicking it
// opens the chat. Replayed toasts (sync) are history and never shown.
import type { Toast } from "../client/types.js";
import { h } from "./dom.js";

/** How long a toast stays; hovering or focusing it keeps it until left. */
const SHOW_MS = 10_000;

export class Toasts {
  readonly el: HTMLElement;
  private shown = new Map<string, { el: HTMLElement; timer: number }>();

  constructor(private readonly open: (chatId: number, messageId: number) => void) {
    this.el = h("section", { class: "toasts", "aria-label": "Notifications", "aria-live": "polite", "aria-relevant": "additions" });
  }

  show(t: Toast): void {
    this.dismiss(t.groupId);
    const el = h(
      "div",
      { class: `toast ${t.priority === "urgent" ? "urgent" : ""}`, "data-testid": "toast", "data-chat-id": String(t.chatId) },
      h(
        "button",
        {
          type: "button",
          class: "toast-open",
          onclick: () => {
            this.dismiss(t.groupId);
            this.open(t.chatId, t.messageId);
          },
        },
        h("strong", null, t.title),
        h("span", null, t.body),
      ),
      h("button", { type: "button", class: "icon", "aria-label": "Dismiss notification", onclick: () => this.dismiss(t.groupId) }, "×"),
    );
    this.el.appendChild(el);
    // Timers only ever dismiss this toast, never a later one of its group.
    const expire = () => {
      if (this.shown.get(t.groupId) === entry) this.dismiss(t.groupId);
    };
    const entry = { el, timer: window.setTimeout(expire, SHOW_MS) };
    const hold = () => clearTimeout(entry.timer);
    const release = () => {
      clearTimeout(entry.timer);
      entry.timer = window.setTimeout(expire, SHOW_MS / 2);
    };
    el.addEventListener("mouseenter", hold);
    el.addEventListener("focusin", hold);
    el.addEventListener("mouseleave", release);
    el.addEventListener("focusout", release);
    this.shown.set(t.groupId, entry);
  }

  /** Drops toasts of a chat (it is being shown). */
  clearChat(chatId: number): void {
    for (const [group, s] of this.shown) if (s.el.dataset["chatId"] === String(chatId)) this.dismiss(group);
  }

  private dismiss(groupId: string): void {
    const s = this.shown.get(groupId);
    if (!s) return;
    clearTimeout(s.timer);
    s.el.remove();
    this.shown.delete(groupId);
  }
}
