// Notification settings: my global preferences (level, desktop/sound, a
// daily do-not-disturb window in a time zone, keywords) and one chat's
// settings (level, mute until, pinned), over the REST routes of
// docs/protocol.md "Notification settings".
import type { Api } from "../client/api.js";
import type { ChatNotificationSettings, NotificationPreferences, NotifyLevel } from "../client/types.js";
import { h, openDialog, showError, uid } from "./dom.js";

const LEVELS: { value: NotifyLevel; label: string }[] = [
  { value: "all", label: "All messages" },
  { value: "mentions_only", label: "Direct messages, mentions and keywords" },
  { value: "off", label: "Nothing (badges only)" },
];

function row(label: string, control: HTMLElement): HTMLElement {
  const id = control.id || (control.id = uid("c"));
  return h("div", { class: control instanceof HTMLInputElement && control.type === "checkbox" ? "check" : "field" },
    control instanceof HTMLInputElement && control.type === "checkbox" ? [control, h("label", { for: id }, label)] : [h("label", { for: id }, label), control]);
}

export async function preferencesDialog(api: Api): Promise<void> {
  const error = h("p", { class: "error", role: "alert" });
  const status = h("p", { role: "status", class: "hint" });
  const level = h("select", null, LEVELS.map((l) => h("option", { value: l.value }, l.label)));
  const desktop = h("input", { type: "checkbox" });
  const sound = h("input", { type: "checkbox" });
  const dnd = h("input", { type: "checkbox" });
  const start = h("input", { type: "time", value: "22:00" });
  const end = h("input", { type: "time", value: "07:00" });
  const zone = h("input", { value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
  const keywords = h("input", { placeholder: "deploy, outage" });
  const dndFields = h("div", { class: "indent" }, row("From", start), row("Until", end), row("Time zone", zone));
  const syncDnd = () => {
    dndFields.hidden = !dnd.checked;
  };
  dnd.addEventListener("change", syncDnd);
  const submit = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h(
    "form",
    { "aria-label": "Notification preferences" },
    row("Notify me about", level),
    row("Desktop notifications", desktop),
    row("Sound", sound),
    h("fieldset", null, h("legend", null, "Do not disturb"), row("Silence notifications daily", dnd), dndFields),
    row("Keywords (comma separated)", keywords),
    error,
    status,
    submit,
  );
  const dialog = openDialog("Notification settings", [form]);
  try {
    const p = await api.preferences();
    level.value = p.level;
    desktop.checked = p.desktop;
    sound.checked = p.sound;
    dnd.checked = p.dndSchedule !== null;
    if (p.dndSchedule) {
      start.value = p.dndSchedule.start;
      end.value = p.dndSchedule.end;
      zone.value = p.dndSchedule.timezone;
    }
    keywords.value = p.keywords.join(", ");
  } catch (e) {
    showError(error, e);
  }
  syncDnd();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError(error, null);
    const body: NotificationPreferences = {
      level: level.value as NotifyLevel,
      desktop: desktop.checked,
      sound: sound.checked,
      dndSchedule: dnd.checked ? { start: start.value, end: end.value, timezone: zone.value.trim() } : null,
      keywords: keywords.value.split(",").map((k) => k.trim()).filter(Boolean),
    };
    submit.disabled = true;
    try {
      await api.setPreferences(body);
      dialog.close();
    } catch (e) {
      showError(error, e);
    } finally {
      submit.disabled = false;
    }
  });
}

const MUTES: { value: string; label: string; ms: number }[] = [
  { value: "", label: "Not muted", ms: 0 },
  { value: "1h", label: "For 1 hour", ms: 3600_000 },
  { value: "8h", label: "For 8 hours", ms: 8 * 3600_000 },
  { value: "1d", label: "For 1 day", ms: 86400_000 },
  { value: "1w", label: "For 1 week", ms: 7 * 86400_000 },
];

export async function chatSettingsDialog(
  api: Api,
  chatId: number,
  title: string,
  saved: (s: ChatNotificationSettings) => void,
): Promise<void> {
  const error = h("p", { class: "error", role: "alert" });
  const level = h(
    "select",
    null,
    h("option", { value: "" }, "Use my global setting"),
    LEVELS.map((l) => h("option", { value: l.value }, l.label)),
  );
  const mute = h("select", null, MUTES.map((m) => h("option", { value: m.value }, m.label)));
  const mutedNow = h("p", { class: "hint" });
  const pinned = h("input", { type: "checkbox" });
  const submit = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h(
    "form",
    { "aria-label": `Settings of ${title}` },
    row("Notify me about", level),
    row("Mute", mute),
    mutedNow,
    row("Pin to the top of the chat list", pinned),
    error,
    submit,
  );
  const dialog = openDialog(`Notifications: ${title}`, [form]);
  let current: ChatNotificationSettings | null = null;
  try {
    current = await api.chatSettings(chatId);
    level.value = current.level ?? "";
    pinned.checked = current.pinned;
    if (current.mutedUntil && Date.parse(current.mutedUntil) > Date.now()) {
      mutedNow.textContent = `Muted until ${new Date(current.mutedUntil).toLocaleString()}.`;
      const keep = h("option", { value: "keep" }, "Keep as is");
      mute.prepend(keep);
      mute.value = "keep";
    }
  } catch (e) {
    showError(error, e);
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError(error, null);
    const body: Partial<Omit<ChatNotificationSettings, "chatId">> = {
      level: (level.value || null) as NotifyLevel | null,
      pinned: pinned.checked,
    };
    if (mute.value !== "keep") {
      const m = MUTES.find((x) => x.value === mute.value)!;
      body.mutedUntil = m.ms ? new Date(Date.now() + m.ms).toISOString() : null;
    }
    submit.disabled = true;
    try {
      saved(await api.setChatSettings(chatId, body));
      dialog.close();
    } catch (e) {
      showError(error, e);
    } finally {
      submit.disabled = false;
    }
  });
}
