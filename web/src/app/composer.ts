// The message box: Enter sends, Shift+Enter adds a line; typing.start
// while typing (at most every 3 s; the server throttles to 1/s) and
// typing.stop after a pause, on send, or when the box is emptied or left;
// a "Replying to …" line with a cancel button (or Escape).
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
  dispose(): void;
}

export function composer(opts: ComposerOptions): Composer {
  const area = h("textarea", { id: "composer", rows: "2", maxlength: "16000", placeholder: "Write a message (Enter sends, Shift+Enter for a new line)" });
  const replying = h("div", { class: "replying", hidden: true });
  const form = h(
    "form",
    { class: "composer", "aria-label": "Send a message" },
    replying,
    h("label", { for: "composer", class: "sr-only" }, "Message"),
    h("div", { class: "row" }, area, h("button", { type: "submit", class: "primary" }, "Send")),
  );
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
    if (!content.trim()) return;
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
    dispose: stopTyping,
  };
}
