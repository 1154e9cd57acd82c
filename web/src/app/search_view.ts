// The search box: message search with the query language of
// docs/protocol.md (GET /api/search/messages), results with their
// highlights (rendered as text and <mark> elements, never as HTML), a
// short help of the operators, and "load more" through the cursor.
// Choosing a result opens its chat at that message.
import type { Api } from "../client/api.js";
import type { SearchResult } from "../client/types.js";
import { formatTime, h, highlighted, openDialog, showError, uid } from "./dom.js";
import type { Store } from "./store.js";

const HELP: [string, string][] = [
  ["budget meet", "both words (the last one also as a prefix)"],
  ['"exact phrase"', "these words in this order"],
  ["-word", "without this word"],
  ["from:@name, from:me", "sent by that person"],
  ["mentions:@name", "mentioning that person"],
  ["in:#channel", "in that chat"],
  ["has:link, has:mention", "with a link, with a mention"],
  ["on:2026-11-30", "on that day (UTC); also before:, after:"],
  ["today, yesterday, last week", "recent days"],
];

export function searchBox(api: Api, store: Store, open: (chatId: number, seq: number) => void): HTMLElement {
  const id = uid("search");
  const input = h("input", { id, type: "search", name: "q", placeholder: "Search messages", maxlength: "512", autocomplete: "off" });
  const form = h(
    "form",
    { role: "search", class: "search-box", "aria-label": "Search messages" },
    h("label", { for: id, class: "sr-only" }, "Search messages"),
    input,
    h("button", { type: "submit" }, "Search"),
    h("button", { type: "button", class: "icon", "aria-label": "Search help", title: "Search help", onclick: () => openDialog("Search help", [helpList()]) }, "?"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (q) resultsDialog(api, store, q, open);
  });
  return form;
}

function resultsDialog(api: Api, store: Store, q: string, open: (chatId: number, seq: number) => void): void {
  const error = h("p", { class: "error", role: "alert" });
  const status = h("p", { role: "status", class: "hint" }, "Searching…");
  const list = h("ul", { class: "search-results", "aria-label": "Search results" });
  const more = h("button", { type: "button", hidden: true }, "More results");
  const help = h(
    "details",
    { class: "search-help" },
    h("summary", null, "Search syntax"),
    helpList(),
  );
  const dialog = openDialog(`Search: ${q}`, [help, status, error, list, more]);
  let cursor: string | null = null;
  let count = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const page = await api.search("messages", q, cursor ? { cursor, limit: 20 } : { limit: 20 });
      for (const r of page.results) {
        const item = result(store, r, (chatId, seq) => {
          dialog.close();
          open(chatId, seq);
        });
        if (item) {
          list.appendChild(item);
          count++;
        }
      }
      cursor = page.cursor;
      more.hidden = !cursor;
      status.textContent = count ? `${count}${cursor ? "+" : ""} result${count === 1 ? "" : "s"}` : "No messages found.";
    } catch (e) {
      showError(error, e);
      status.textContent = "";
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", () => void load());
  void load();
}

function helpList(): HTMLElement {
  return h("dl", { class: "search-help" }, HELP.map(([k, v]) => [h("dt", null, h("code", null, k)), h("dd", null, v)]));
}

function result(store: Store, r: SearchResult, open: (chatId: number, seq: number) => void): HTMLElement | null {
  const m = r.message;
  if (!m) return null;
  const chat = store.chats.get(m.chatId);
  const fragments = r.highlight["content"];
  const snippet = h("span", { class: "snippet" });
  if (fragments && fragments.length) {
    fragments.forEach((f, i) => {
      if (i) snippet.appendChild(document.createTextNode(" … "));
      snippet.appendChild(highlighted(f));
    });
  } else {
    snippet.textContent = m.content;
  }
  return h(
    "li",
    null,
    h(
      "button",
      { type: "button", class: "search-result", "data-message-id": String(m.messageId), onclick: () => open(m.chatId, m.seq) },
      h(
        "span",
        { class: "meta" },
        h("strong", null, m.senderName),
        ` in ${chat?.title ?? `chat ${m.chatId}`} · `,
        h("time", { datetime: m.timestamp }, formatTime(m.timestamp)),
      ),
      snippet,
    ),
  );
}
