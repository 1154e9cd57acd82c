// The signed-out screen: sign in, sign up (a new workspace, or joining one
// with an invite token: the links <origin>/invite#token=<token> and
// <origin>/#invite=<token> pre-fill it),
// and the "check your e-mail" answer of verified sign-up (202).
import { Api, ApiError } from "../client/api.js";
import type { Session } from "../client/types.js";
import { h, replace, showError, uid } from "./dom.js";

export interface AuthOptions {
  api: Api;
  inviteToken: string | null;
  onSignedIn: (session: Session) => void;
}

export function renderAuth(root: HTMLElement, opts: AuthOptions): void {
  const mode: "signin" | "signup" = opts.inviteToken ? "signup" : "signin";
  replace(root, h("div", { class: "auth" }, h("h1", null, "Fechatter"), mode === "signin" ? signinForm(root, opts) : signupForm(root, opts)));
  root.querySelector<HTMLInputElement>("input")?.focus();
}

function field(label: string, attrs: Record<string, string | boolean>): [HTMLElement, HTMLInputElement] {
  const id = uid("f");
  const input = h("input", { id, ...attrs });
  return [h("div", { class: "field" }, h("label", { for: id }, label), input), input];
}

function signinForm(root: HTMLElement, opts: AuthOptions): HTMLElement {
  const [emailRow, email] = field("E-mail", { type: "email", name: "email", autocomplete: "username", required: true });
  const [pwRow, password] = field("Password", { type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { "aria-label": "Sign in" },
    h("h2", null, "Sign in"),
    emailRow,
    pwRow,
    error,
    submit,
    h("p", null, "No account yet? ", h("button", { type: "button", class: "link", onclick: () => switchTo(root, opts, "signup") }, "Create an account")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    showError(error, null);
    try {
      opts.onSignedIn(await opts.api.signin(email.value.trim(), password.value));
    } catch (e) {
      showError(error, describe(e));
      submit.disabled = false;
    }
  });
  return form;
}

function signupForm(root: HTMLElement, opts: AuthOptions): HTMLElement {
  const [nameRow, fullname] = field("Full name", { name: "fullname", autocomplete: "name", required: true, maxlength: "100" });
  const [emailRow, email] = field("E-mail", { type: "email", name: "email", autocomplete: "username", required: true });
  const [pwRow, password] = field("Password", {
    type: "password",
    name: "password",
    autocomplete: "new-password",
    required: true,
    minlength: "8",
    maxlength: "128",
  });
  const [wsRow, workspace] = field("Workspace name", { name: "workspace", maxlength: "64" });
  const [inviteRow, invite] = field("Invite token", { name: "inviteToken" });
  if (opts.inviteToken) invite.value = opts.inviteToken;

  const joinId = uid("r");
  const newId = uid("r");
  const useInvite = h("input", { type: "radio", name: "way", id: joinId, checked: Boolean(opts.inviteToken) });
  const useNew = h("input", { type: "radio", name: "way", id: newId, checked: !opts.inviteToken });
  const sync = () => {
    wsRow.hidden = !useNew.checked;
    workspace.required = useNew.checked;
    inviteRow.hidden = !useInvite.checked;
    invite.required = useInvite.checked;
  };
  useInvite.addEventListener("change", sync);
  useNew.addEventListener("change", sync);
  sync();

  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign up");
  const form = h(
    "form",
    { "aria-label": "Sign up" },
    h("h2", null, opts.inviteToken ? "Join your team" : "Create an account"),
    nameRow,
    emailRow,
    pwRow,
    h(
      "fieldset",
      null,
      h("legend", null, "Workspace"),
      h("div", { class: "radio" }, useNew, h("label", { for: newId }, "Create a new workspace")),
      h("div", { class: "radio" }, useInvite, h("label", { for: joinId }, "Join with an invite")),
    ),
    wsRow,
    inviteRow,
    error,
    submit,
    h("p", null, "Have an account? ", h("button", { type: "button", class: "link", onclick: () => switchTo(root, opts, "signin") }, "Sign in")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    showError(error, null);
    const base = { fullname: fullname.value.trim(), email: email.value.trim(), password: password.value };
    try {
      const session = useInvite.checked
        ? await opts.api.signup({ ...base, inviteToken: invite.value.trim() })
        : await opts.api.signup({ ...base, workspace: workspace.value.trim() });
      if (opts.inviteToken) history.replaceState(null, "", "/");
      opts.onSignedIn(session);
    } catch (e) {
      if (e instanceof ApiError && e.status === 202) {
        replace(
          form,
          h("h2", null, "Check your e-mail"),
          h("p", { role: "status" }, `We sent a link to ${base.email}. Open it to finish signing up (it is valid for 24 hours).`),
        );
        return;
      }
      showError(error, describe(e));
      submit.disabled = false;
    }
  });
  return form;
}

function switchTo(root: HTMLElement, opts: AuthOptions, mode: "signin" | "signup"): void {
  replace(root, h("div", { class: "auth" }, h("h1", null, "Fechatter"), mode === "signin" ? signinForm(root, opts) : signupForm(root, opts)));
  root.querySelector<HTMLInputElement>("input")?.focus();
}

/** The mailed link <origin>/signup/verify#token=…: creates the account. */
export async function renderVerify(root: HTMLElement, api: Api, token: string, onSignedIn: (s: Session) => void): Promise<void> {
  const status = h("p", { role: "status" }, "Finishing your sign-up…");
  replace(root, h("div", { class: "auth" }, h("h1", null, "Fechatter"), status));
  try {
    const session = await api.verifySignup(token);
    history.replaceState(null, "", "/");
    onSignedIn(session);
  } catch (e) {
    status.textContent = describe(e);
    root.firstElementChild?.appendChild(h("p", null, h("a", { href: "/" }, "Go to sign in")));
  }
}

function describe(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.code === "invalid_credentials") return "Wrong e-mail or password.";
    if (e.code === "conflict") return "This e-mail already has an account: sign in instead.";
    if (e.code === "rate_limited") return `Too many attempts; try again in ${Math.ceil((e.retryAfterMs ?? 1000) / 1000)} s.`;
    if (e.code === "forbidden") return e.message || "Not allowed.";
    return e.message;
  }
  return String(e);
}
