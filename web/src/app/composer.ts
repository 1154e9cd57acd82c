// The message box: Enter sends, Shift+Enter adds a line; typing.start
// while typing (at most every 3 s; the server throttles to 1/s) and
// typing.stop after a pause, on send, or when the box is emptied or left;
// a "Replying to …" line with a cancel button (or Escape). Blocked (a
// read-only channel, see posting.ts), the box and the button are disabled
// and a line says why; a draft stays for when posting is allowed again.
import { h } from "./dom.js";

const TYPING_RENEW_MS = 3000;
const TYPING_IDLE_MS = 4000;

export interface ComposerOptions {
  send(content: string): void;
  typing(active: boolean): void;
}

export interface Composer {
  el: HTMLElement;
  focus(): void;
  setReply(text: string | null, cancel: () => void): void;
  /** Disables the composer with `notice` shown, or enables it again (null). */
  setBlocked(notice: string | null): void;
  dispose(): void;
}

export function composer(opts: ComposerOptions): Composer {
  const placeholder = "Write a message (Enter sends, Shift+Enter for a new line)";
  const area = h("textarea", { id: "composer", rows: "2", maxlength: "16000", placeholder });
  const sendButton = h("button", { type: "submit", class: "primary" }, "Send");
  const replying = h("div", { class: "replying", hidden: true });
  const notice = h("p", { id: "composer-notice", class: "hint composer-notice", "data-testid": "composer-notice", role: "status", hidden: true });
  const form = h(
    "form",
    { class: "composer", "aria-label": "Send a message" },
    replying,
    notice,
    h("label", { for: "composer", class: "sr-only" }, "Message"),
    h("div", { class: "row" }, area, sendButton),
  );
  let blocked: string | null = null;
  let typingSince = 0;
  let idleTimer = 0;
  const stopTyping = () => {
    clearTimeout(idleTimer);
    if (typingSince) {
      typingSince = 0;
      opts.typing(false);
    }
  };
  const submit = () => {
    const content = area.value;
    if (blocked !== null || !content.trim()) return;
    stopTyping();
    opts.send(content);
    area.value = "";
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit();
  });
  let cancelReply: (() => void) | null = null;
  area.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      submit();
    } else if (ev.key === "Escape" && cancelReply) {
      ev.preventDefault();
      cancelReply();
    }
  });
  area.addEventListener("input", () => {
    if (!area.value.trim()) return stopTyping();
    const now = Date.now();
    if (now - typingSince > TYPING_RENEW_MS) {
      typingSince = now;
      opts.typing(true);
    }
    clearTimeout(idleTimer);
    idleTimer = window.setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  area.addEventListener("blur", stopTyping);
  return {
    el: form,
    focus: () => area.focus(),
    setReply(text, cancel) {
      if (blocked !== null) text = null; // nothing to reply with
      cancelReply = text === null ? null : cancel;
      replying.hidden = text === null;
      replying.replaceChildren();
      if (text !== null) {
        replying.append(
          h("span", null, `Replying to ${text}`),
          h("button", { type: "button", class: "icon", "aria-label": "Cancel reply", onclick: cancel }, "×"),
        );
      }
    },
    setBlocked(text) {
      if (text === blocked) return;
      blocked = text;
      area.disabled = sendButton.disabled = text !== null;
      form.classList.toggle("blocked", text !== null);
      notice.hidden = text === null;
      notice.textContent = text ?? "";
      area.placeholder = text === null ? placeholder : "";
      if (text !== null) {
        area.setAttribute("aria-describedby", notice.id);
        stopTyping();
        cancelReply?.();
      } else {
        area.removeAttribute("aria-describedby");
      }
    },
    dispose: stopTyping,
  };
}
