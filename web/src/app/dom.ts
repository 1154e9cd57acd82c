// A tiny element helper, so views build the DOM with real elements and
// text nodes (never innerHTML of server text: every user string is put in
// with textContent / text nodes, which the browser never parses as HTML).

export type Child = Node | string | number | null | undefined | false | Child[];
type AttrValue = string | number | boolean | null | undefined | EventListener;
export type Attrs = Record<string, AttrValue>;

/**
 * h("button", { class: "x", onclick: fn, "aria-label": "Close" }, "×")
 * Keys starting with "on" become listeners; `true` sets an empty attribute,
 * `false`/null/undefined leave it out; children are nodes or text.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "class") {
        el.className = String(value);
      } else if (key === "value" && "value" in el) {
        (el as HTMLInputElement).value = String(value);
      } else if (key === "checked" && "checked" in el) {
        (el as HTMLInputElement).checked = Boolean(value);
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function replace(el: Node, ...children: Child[]): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  append(el, children);
}

/**
 * Renders a search highlight (HTML-escaped text with <mark>…</mark>) as
 * text nodes and <mark> elements: the text is split on the two tags and
 * unescaped as text, never parsed as HTML.
 */
export function highlighted(escaped: string): DocumentFragment {
  const frag = document.createDocumentFragment();
  const parts = escaped.split(/(<mark>|<\/mark>)/);
  let inMark = false;
  for (const part of parts) {
    if (part === "<mark>") inMark = true;
    else if (part === "</mark>") inMark = false;
    else if (part) {
      const text = document.createTextNode(unescapeHtml(part));
      if (inMark) frag.appendChild(h("mark", null, text));
      else frag.appendChild(text);
    }
  }
  return frag;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", "#39": "'", "#x27": "'", "#47": "/", "#x2F": "/" };

export function unescapeHtml(s: string): string {
  return s.replace(/&(#?\w+);/g, (all, name: string) => {
    if (name in ENTITIES) return ENTITIES[name]!;
    if (/^#\d+$/.test(name)) return String.fromCodePoint(Number(name.slice(1)));
    if (/^#x[0-9a-f]+$/i.test(name)) return String.fromCodePoint(parseInt(name.slice(2), 16));
    return all;
  });
}

/** A short local time ("14:05") or date and time for older days. */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

let idCounter = 0;
/** A unique element id for label/aria wiring. */
export function uid(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A modal <dialog> (Escape closes it natively); removed from the DOM on close. */
export function openDialog(title: string, body: Child[], opts: { onClose?: () => void } = {}): HTMLDialogElement {
  const titleId = uid("dlg");
  const dialog = h(
    "dialog",
    { "aria-labelledby": titleId, class: "dialog" },
    h(
      "div",
      { class: "dialog-head" },
      h("h2", { id: titleId }, title),
      h("button", { type: "button", class: "icon", "aria-label": "Close", onclick: () => dialog.close() }, "×"),
    ),
    h("div", { class: "dialog-body" }, body),
  );
  dialog.addEventListener("close", () => {
    dialog.remove();
    opts.onClose?.();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  return dialog;
}

/** Shows an error text in `el` (a role="alert" element) or clears it. */
export function showError(el: HTMLElement, e: unknown): void {
  el.textContent = e ? errorText(e) : "";
}

export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** The user is looking at this window: it has focus and is not hidden. */
export function windowFocused(): boolean {
  return document.hasFocus() && document.visibilityState === "visible";
}
