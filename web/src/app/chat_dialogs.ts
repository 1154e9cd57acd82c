// Dialogs that change which chats I am in: create a chat of any of the four
// types with a member picker (GET /api/users), browse and join public
// channels (GET /api/search/chats), and invite people to the workspace
// (POST /api/workspace/invites: the token and an <origin>/invite#token= link).
import type { Api } from "../client/api.js";
import type { Chat, ChatType, User } from "../client/types.js";
import { h, openDialog, replace, showError, uid } from "./dom.js";
import type { Store } from "./store.js";

const TYPES: { type: ChatType; label: string; hint: string }[] = [
  { type: "single", label: "Direct message", hint: "you and one other person" },
  { type: "group", label: "Group", hint: "you and two or more people" },
  { type: "private_channel", label: "Private channel", hint: "invited members only; needs a name" },
  { type: "public_channel", label: "Public channel", hint: "anyone in the workspace may join; needs a name" },
];

export function newChatDialog(api: Api, store: Store, opened: (chat: Chat) => void): void {
  const error = h("p", { class: "error", role: "alert" });
  const typeRadios = TYPES.map((t, i) => {
    const id = uid("t");
    const input = h("input", { type: "radio", name: "chat-type", id, value: t.type, checked: i === 0 });
    return { t, input, row: h("div", { class: "radio" }, input, h("label", { for: id }, t.label, h("span", { class: "hint" }, ` — ${t.hint}`))) };
  });
  const nameId = uid("n");
  const name = h("input", { id: nameId, maxlength: "100" });
  const nameRow = h("div", { class: "field" }, h("label", { for: nameId }, "Name"), name);
  const filterId = uid("q");
  const filter = h("input", { id: filterId, type: "search", placeholder: "Filter people" });
  const picker = h("ul", { class: "picker", "aria-busy": "true" }, h("li", null, "Loading people…"));
  let checks: { u: User; input: HTMLInputElement; row: HTMLElement }[] = [];
  const fill = () => {
    const others = [...store.users.values()].filter((u) => u.id !== store.me.id && u.active);
    checks = others.map((u) => {
      const id = uid("u");
      const input = h("input", { type: "checkbox", id, value: String(u.id) });
      return { u, input, row: h("li", null, input, h("label", { for: id }, u.fullname, h("span", { class: "hint" }, ` ${u.email}`))) };
    });
    picker.removeAttribute("aria-busy");
    replace(picker, checks.length ? checks.map((c) => c.row) : h("li", null, "Nobody else is in your workspace yet: invite people first."));
  };
  // The directory may have grown since the app loaded it (new sign-ups).
  api.users().then(
    (users) => {
      store.setUsers(users);
      fill();
    },
    () => fill(),
  );
  filter.addEventListener("input", () => {
    const q = filter.value.trim().toLowerCase();
    for (const c of checks) c.row.hidden = Boolean(q) && !`${c.u.fullname} ${c.u.email}`.toLowerCase().includes(q);
  });
  const type = () => typeRadios.find((r) => r.input.checked)!.t.type;
  const sync = () => {
    const t = type();
    nameRow.hidden = t === "single";
    name.required = t.endsWith("channel");
  };
  for (const r of typeRadios) r.input.addEventListener("change", sync);
  sync();

  const submit = h("button", { type: "submit", class: "primary" }, "Create");
  const form = h(
    "form",
    { "aria-label": "New chat" },
    h("fieldset", null, h("legend", null, "Type"), typeRadios.map((r) => r.row)),
    nameRow,
    h("fieldset", null, h("legend", null, "Members"), h("div", { class: "field" }, h("label", { for: filterId }, "Find people"), filter), picker),
    error,
    submit,
  );
  const dialog = openDialog("New chat", [form]);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError(error, null);
    const t = type();
    const members = checks.filter((c) => c.input.checked).map((c) => c.u.id);
    if (t === "single" && members.length !== 1) return showError(error, "Pick exactly one person for a direct message.");
    if (t === "group" && members.length < 2) return showError(error, "Pick at least two people for a group.");
    submit.disabled = true;
    try {
      const body: { type: ChatType; name?: string; members: number[] } = { type: t, members: t === "public_channel" ? [] : members };
      if (t !== "single" && name.value.trim()) body.name = name.value.trim();
      const chat = await api.createChat(body);
      if (t === "public_channel" && members.length) await api.addMembers(chat.id, members);
      dialog.close();
      opened(chat);
    } catch (e) {
      showError(error, e);
      submit.disabled = false;
    }
  });
}

export function browseChannelsDialog(api: Api, opened: (chat: Chat) => void): void {
  const id = uid("q");
  const input = h("input", { id, type: "search", required: true, placeholder: "e.g. general" });
  const results = h("ul", { class: "results", "aria-live": "polite" });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { role: "search", "aria-label": "Find channels" },
    h("div", { class: "field" }, h("label", { for: id }, "Channel name"), input),
    h("button", { type: "submit" }, "Find"),
  );
  const dialog = openDialog("Browse channels", [form, error, results]);
  const run = async () => {
    const q = input.value.trim();
    showError(error, null);
    if (!q) return replace(results);
    try {
      const page = await api.search("chats", q, { limit: 50 });
      const channels = page.results.flatMap((r) => (r.channel && r.channel.chatType === "public_channel" ? [r.channel] : []));
      replace(
        results,
        channels.length
          ? channels.map((c) =>
              h(
                "li",
                null,
                h("span", { class: "chat-title" }, `#${c.name}`),
                c.description ? h("span", { class: "hint" }, ` ${c.description}`) : null,
                h(
                  "button",
                  {
                    type: "button",
                    onclick: async () => {
                      try {
                        const chat = c.member ? await api.chat(c.channelId) : await api.joinChat(c.channelId);
                        dialog.close();
                        opened(chat);
                      } catch (e) {
                        showError(error, e);
                      }
                    },
                  },
                  c.member ? `Open #${c.name}` : `Join #${c.name}`,
                ),
              ),
            )
          : h("li", null, "No public channel matches."),
      );
    } catch (e) {
      showError(error, e);
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void run();
  });
  let timer = 0;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = window.setTimeout(run, 250);
  });
}

export function inviteDialog(api: Api): void {
  const error = h("p", { class: "error", role: "alert" });
  const emailId = uid("e");
  const email = h("input", { id: emailId, type: "email", placeholder: "optional" });
  const singleId = uid("s");
  const single = h("input", { id: singleId, type: "checkbox" });
  const out = h("div", { class: "invite-out", "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create invite");
  const form = h(
    "form",
    { "aria-label": "Create invite" },
    h("div", { class: "field" }, h("label", { for: emailId }, "Only for this e-mail"), email),
    h("div", { class: "check" }, single, h("label", { for: singleId }, "Single use")),
    error,
    submit,
  );
  openDialog("Invite people", [form, out]);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError(error, null);
    submit.disabled = true;
    try {
      const body: { email?: string; singleUse?: boolean } = { singleUse: single.checked };
      if (email.value.trim()) body.email = email.value.trim();
      const invite = await api.createInvite(body);
      const link = `${location.origin}/invite#token=${encodeURIComponent(invite.token ?? "")}`;
      const tokenId = uid("tok");
      const linkId = uid("lnk");
      const linkInput = h("input", { id: linkId, readonly: true, value: link });
      replace(
        out,
        h("p", null, `Invite created; it expires ${new Date(invite.expiresAt).toLocaleString()}. It is shown only now.`),
        h("div", { class: "field" }, h("label", { for: tokenId }, "Invite token"), h("input", { id: tokenId, readonly: true, value: invite.token ?? "" })),
        h("div", { class: "field" }, h("label", { for: linkId }, "Invite link"), linkInput),
        h(
          "button",
          {
            type: "button",
            onclick: async (ev: Event) => {
              const button = ev.currentTarget as HTMLButtonElement;
              try {
                await navigator.clipboard.writeText(link);
                button.textContent = "Copied";
              } catch {
                linkInput.select();
              }
            },
          },
          "Copy link",
        ),
      );
    } catch (e) {
      showError(error, e);
    } finally {
      submit.disabled = false;
    }
  });
}
