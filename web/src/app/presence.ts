// Presence dots (with their text alternative) and my own status selector.
// The watching itself (presence.subscribe, renewed before the server's
// PRESENCE_SUB_TTL of 10 minutes) lives in live.ts.
import type { PresenceStatus } from "../client/types.js";
import { h, uid } from "./dom.js";
import type { Store } from "./store.js";

const LABELS: Record<PresenceStatus, string> = {
  online: "online",
  away: "away",
  dnd: "do not disturb",
  brb: "be right back",
  offline: "offline",
};

export function presenceLabel(status: PresenceStatus): string {
  return LABELS[status];
}

export function presenceDot(store: Store, userId: number): HTMLElement {
  const status = store.presence.get(userId) ?? "offline";
  return h("span", { class: `dot ${status}`, role: "img", "aria-label": LABELS[status], title: LABELS[status] });
}

export function statusSelector(store: Store, set: (status: Exclude<PresenceStatus, "offline">) => Promise<void>): HTMLElement {
  const id = uid("status");
  const select = h(
    "select",
    { id },
    (["online", "away", "dnd", "brb"] as const).map((s) => h("option", { value: s }, LABELS[s])),
  );
  const sync = () => {
    const s = store.myStatus === "offline" ? "online" : store.myStatus;
    if (select.value !== s && document.activeElement !== select) select.value = s;
  };
  store.on("presence", sync);
  sync();
  select.addEventListener("change", () => {
    void set(select.value as Exclude<PresenceStatus, "offline">);
  });
  return h("span", { class: "status-select" }, h("label", { for: id }, "Status"), select);
}
