// The open chat: its header (title, members with presence dots, settings),
// the messages (older pages on demand, live updates, edits, deletes,
// reactions, replies, "sending…/failed" states of my own sends), "Seen by",
// the typing line and the composer (disabled where I may not post, see
// posting.ts). Messages come from a Feed (live.ts, over the client
// library's cache); read marks go out while the chat is shown and the
// window has focus.
import type { Feed, ShownMessage } from "./feed.js";
import { composer } from "./composer.js";
import { formatTime, h, replace, windowFocused } from "./dom.js";
import { gatePosting } from "./posting.js";
import { presenceDot, presenceLabel } from "./presence.js";
import type { Store } from "./store.js";

const QUICK_EMOJI = ["👍", "🎉", "❤️", "😂"];

export interface ChatViewActions {
  settings(chatId: number): void;
  /** The member list looks stale (a sender who is not in it). */
  refreshMembers(chatId: number): void;
}

/** Mounts the chat `chatId` into `el`; returns an unmount function. */
export function mountChat(
  el: HTMLElement,
  store: Store,
  feed: Feed,
  chatId: number,
  actions: ChatViewActions,
  target?: { seq: number },
): () => void {
  const chat = store.chats.get(chatId);
  const title = h("h2", { id: "chat-title" }, chat?.title ?? "");
  const members = h("div", { class: "members", "aria-label": "Members" });
  const older = h("button", { type: "button", class: "older" }, "Load older messages");
  const list = h("ol", { "aria-label": "Messages", role: "log", "aria-live": "polite" });
  const empty = h("p", { class: "hint empty-chat" }, "Loading messages…");
  const seen = h("p", { class: "seen", "data-testid": "seen", "aria-live": "polite" });
  const scroller = h("div", { class: "messages", tabindex: "0", role: "group", "aria-label": "Message history" }, older, empty, list, seen);
  const typingLine = h("p", { class: "typing", "data-testid": "typing", "aria-live": "polite" });
  const problem = h("p", { class: "error", role: "alert" });
  let problemTimer = 0;
  /** Shows why an edit, delete or reaction was refused (the library has undone it). */
  const attempt = (what: string, p: Promise<void>) => {
    p.catch((e: unknown) => {
      problem.textContent = `Could not ${what}: ${e instanceof Error ? e.message : String(e)}`;
      clearTimeout(problemTimer);
      problemTimer = window.setTimeout(() => (problem.textContent = ""), 6000);
    });
  };
  let replyTo: ShownMessage | null = null;
  let editingKey: string | null = null;
  let pendingDelete: string | null = null;
  const box = composer({
    send: (content) => {
      feed.send(chatId, content, replyTo?.id ?? null);
      setReply(null);
      stickToBottom = true;
    },
    typing: (active) => feed.typing(chatId, active),
  });
  const setReply = (m: ShownMessage | null) => {
    replyTo = m;
    box.setReply(m ? `${store.userName(m.senderId)}: ${snippet(m.content)}` : null, () => setReply(null));
  };
  replace(
    el,
    h(
      "section",
      { class: "pane", "aria-labelledby": "chat-title", "data-testid": "chat-view", "data-chat-id": String(chatId) },
      h(
        "div",
        { class: "chat-head" },
        title,
        members,
        h("button", { type: "button", onclick: () => actions.settings(chatId) }, "Chat settings"),
      ),
      scroller,
      problem,
      typingLine,
      box.el,
    ),
  );

  let stickToBottom = true;
  scroller.addEventListener("scroll", () => {
    stickToBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  });
  older.addEventListener("click", async () => {
    older.disabled = true;
    const before = scroller.scrollHeight;
    await feed.loadOlder(chatId).catch(() => {});
    scroller.scrollTop += scroller.scrollHeight - before;
    older.disabled = false;
  });

  const elements = new Map<string, { el: HTMLElement; sig: string }>();
  const renderMessages = () => {
    const shown = feed.list(chatId);
    older.hidden = !feed.hasOlder(chatId);
    empty.hidden = shown.length > 0;
    if (feed.loaded(chatId)) empty.textContent = "No messages yet: say hello.";
    const byId = new Map<number, ShownMessage>();
    for (const m of shown) if (m.id !== null) byId.set(m.id, m);
    const keep = new Set<string>();
    let prev: Element | null = null;
    let before: ShownMessage | null = null;
    for (const m of shown) {
      keep.add(m.key);
      const quoted = m.replyTo !== null ? byId.get(m.replyTo) : undefined;
      // A message right after one of the same sender (within 5 minutes) drops its header.
      const cont = before !== null && before.senderId === m.senderId && m.replyTo === null && Date.parse(m.createdAt) - Date.parse(before.createdAt) < 300_000;
      before = m;
      const sig = JSON.stringify([m.content, m.editedAt, m.deletedAt, m.state, m.reactions, quoted?.content, quoted?.deletedAt, pendingDelete === m.key, cont]);
      let entry = elements.get(m.key);
      if (!entry || (entry.sig !== sig && editingKey !== m.key)) {
        const fresh = messageEl(m, quoted, cont);
        if (entry) entry.el.replaceWith(fresh);
        entry = { el: fresh, sig };
        elements.set(m.key, entry);
      }
      const want: Element | null = prev ? prev.nextElementSibling : list.firstElementChild;
      if (want !== entry.el) {
        if (prev) prev.after(entry.el);
        else list.prepend(entry.el);
      }
      prev = entry.el;
    }
    for (const [key, entry] of elements) {
      if (!keep.has(key)) {
        entry.el.remove();
        elements.delete(key);
      }
    }
    const members = store.members.get(chatId);
    if (members && shown.some((m) => !members.some((x) => x.userId === m.senderId))) actions.refreshMembers(chatId);
    renderSeen(shown);
    if (stickToBottom) scroller.scrollTop = scroller.scrollHeight;
    markRead(shown);
  };

  const messageEl = (m: ShownMessage, quoted: ShownMessage | undefined, cont: boolean): HTMLElement => {
    const mine = m.senderId === store.me.id;
    const deleted = m.deletedAt !== null;
    const li = h("li", {
      class: `msg${mine ? " mine" : ""}${deleted ? " deleted" : ""}${cont ? " cont" : ""}`,
      "data-testid": "message",
      "data-key": m.key,
      "data-message-id": m.id !== null ? String(m.id) : false,
      "data-seq": m.seq !== null ? String(m.seq) : false,
    });
    const head = h(
      "div",
      { class: "msg-head" },
      h("span", { class: "sender" }, store.userName(m.senderId)),
      h("time", { datetime: m.createdAt, title: new Date(m.createdAt).toLocaleString() }, formatTime(m.createdAt)),
      m.editedAt && !deleted ? h("span", { class: "edited" }, "(edited)") : null,
    );
    const quote =
      m.replyTo !== null
        ? h(
            "button",
            {
              type: "button",
              class: "quote",
              title: "Show the message this replies to",
              onclick: () => jumpTo(`li[data-message-id="${m.replyTo}"]`),
            },
            quoted
              ? `↪ ${store.userName(quoted.senderId)}: ${quoted.deletedAt ? "message deleted" : snippet(quoted.content)}`
              : "↪ an earlier message",
          )
        : null;
    const content = h("p", { class: "content" }, deleted ? "message deleted" : m.content);
    const stateEl =
      m.state === "sending"
        ? h("span", { class: "state", role: "status" }, "sending…")
        : m.state === "failed"
          ? h(
              "span",
              { class: "state failed", role: "status" },
              "failed to send ",
              h("button", { type: "button", onclick: () => feed.retry(chatId, m.key) }, "Retry"),
              " ",
              h("button", { type: "button", onclick: () => feed.discard(chatId, m.key) }, "Discard"),
            )
          : null;
    const reactions = m.reactions.length
      ? h(
          "div",
          { class: "reactions", "aria-label": "Reactions" },
          m.reactions.map((r) => {
            const mineR = r.userIds.includes(store.me.id);
            return h(
              "button",
              {
                type: "button",
                "aria-pressed": mineR ? "true" : "false",
                title: r.userIds.map((id) => store.userName(id)).join(", "),
                onclick: () => m.id !== null && attempt("react", feed.react(chatId, m.id, r.emoji, !mineR)),
              },
              `${r.emoji} ${r.count}`,
            );
          }),
        )
      : null;
    const actionsEl =
      m.id !== null && !deleted
        ? h(
            "div",
            { class: "msg-actions" },
            h("button", { type: "button", class: "reply", onclick: () => { setReply(m); box.focus(); } }, "Reply"),
            QUICK_EMOJI.map((emoji) => {
              const has = m.reactions.some((r) => r.emoji === emoji && r.userIds.includes(store.me.id));
              return h(
                "button",
                { type: "button", "aria-label": `React with ${emoji}`, "aria-pressed": has ? "true" : "false", onclick: () => attempt("react", feed.react(chatId, m.id!, emoji, !has)) },
                emoji,
              );
            }),
            mine ? h("button", { type: "button", onclick: () => startEdit(m, content) }, "Edit") : null,
            pendingDelete === m.key
              ? [
                  h("button", { type: "button", class: "danger", onclick: () => { pendingDelete = null; attempt("delete the message", feed.remove(chatId, m.id!)); } }, "Confirm delete"),
                  h("button", { type: "button", onclick: () => { pendingDelete = null; renderMessages(); } }, "Keep"),
                ]
              : mine || canModerate()
                ? h("button", { type: "button", onclick: () => { pendingDelete = m.key; renderMessages(); elements.get(m.key)?.el.querySelector<HTMLButtonElement>(".danger")?.focus(); } }, "Delete")
                : null,
          )
        : null;
    li.append(head);
    if (quote) li.append(quote);
    li.append(content);
    if (reactions) li.append(reactions);
    if (stateEl) li.append(stateEl);
    if (actionsEl) li.append(actionsEl);
    return li;
  };

  /** Scrolls to a shown message and marks it. */
  const jumpTo = (selector: string): boolean => {
    const el = list.querySelector<HTMLElement>(selector);
    if (!el) return false;
    list.querySelector(".target")?.classList.remove("target");
    el.classList.add("target");
    el.scrollIntoView({ block: "center" });
    stickToBottom = false;
    return true;
  };

  const canModerate = () => {
    const me = store.members.get(chatId)?.find((x) => x.userId === store.me.id);
    return me?.role === "owner" || me?.role === "admin";
  };

  const startEdit = (m: ShownMessage, content: HTMLElement) => {
    editingKey = m.key;
    const area = h("textarea", { "aria-label": "Edit message", rows: "2" });
    area.value = m.content;
    const done = () => {
      editingKey = null;
      const entry = elements.get(m.key);
      if (entry) entry.sig = ""; // rebuilt by the next render
      renderMessages();
    };
    const save = async () => {
      const text = area.value.trim();
      if (text && text !== m.content && m.id !== null) attempt("edit the message", feed.edit(chatId, m.id, text));
      done();
    };
    const form = h(
      "form",
      { class: "edit-form" },
      area,
      h("div", null, h("button", { type: "submit", class: "primary" }, "Save"), " ", h("button", { type: "button", onclick: done }, "Cancel")),
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void save();
    });
    area.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        void save();
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        done();
      }
    });
    content.replaceWith(form);
    area.focus();
  };

  const renderSeen = (shown: ShownMessage[]) => {
    let lastMine: ShownMessage | undefined;
    for (let i = shown.length - 1; i >= 0; i--) {
      const m = shown[i]!;
      if (m.senderId === store.me.id && m.seq !== null && m.deletedAt === null) {
        lastMine = m;
        break;
      }
    }
    const receipts = store.receipts.get(chatId);
    const names: string[] = [];
    if (lastMine && receipts) {
      for (const [userId, seq] of receipts) if (seq >= lastMine.seq! && userId !== store.me.id) names.push(store.userName(userId));
    }
    seen.textContent = names.length ? `Seen by ${names.sort().join(", ")}` : "";
  };

  let markedSeq = 0;
  const markRead = (shown = feed.list(chatId)) => {
    if (!windowFocused()) return;
    let last = 0;
    for (const m of shown) if (m.seq !== null && m.seq > last) last = m.seq;
    if (last > markedSeq) {
      markedSeq = last;
      feed.markRead(chatId, last);
    }
  };

  const renderHead = () => {
    const c = store.chats.get(chatId);
    title.textContent = c?.title ?? "";
    const ms = store.members.get(chatId) ?? [];
    const others = ms.filter((m) => m.userId !== store.me.id);
    replace(
      members,
      c?.type === "single"
        ? others.map((m) => h("span", { class: "member" }, presenceDot(store, m.userId), presenceLabel(store.presence.get(m.userId) ?? "offline")))
        : ms.length > 12
          ? `${ms.length} members`
          : others.map((m) => h("span", { class: "member" }, presenceDot(store, m.userId), m.fullname)),
    );
  };
  const renderTyping = () => {
    const names = store.typingIn(chatId);
    typingLine.textContent =
      names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`;
  };

  const offs = [
    feed.onChange(chatId, renderMessages),
    store.on("receipts", () => renderSeen(feed.list(chatId))),
    store.on("typing", renderTyping),
    store.on("chats", renderHead),
    store.on("members", renderHead),
    store.on("presence", renderHead),
    store.on("users", renderMessages),
    gatePosting(store, chatId, box),
  ];
  const typingTimer = window.setInterval(renderTyping, 1000);
  const onFocus = () => markRead();
  window.addEventListener("focus", onFocus);
  document.addEventListener("visibilitychange", onFocus);

  renderHead();
  renderMessages();
  renderTyping();
  if (target) {
    void feed.loadUntil(chatId, target.seq).then(() => {
      renderMessages();
      jumpTo(`li[data-seq="${target.seq}"]`);
    });
  }
  box.focus();

  return () => {
    for (const off of offs) off();
    clearInterval(typingTimer);
    clearTimeout(problemTimer);
    window.removeEventListener("focus", onFocus);
    document.removeEventListener("visibilitychange", onFocus);
    box.dispose();
  };
}

function snippet(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  return t.length > 80 ? `${t.slice(0, 79)}…` : t;
}
