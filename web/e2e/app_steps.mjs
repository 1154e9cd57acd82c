// Steps the app scenarios (10-*.scenario.mjs and later) share, on top of
// harness.mjs: users (browser contexts from ctx.newUser, so a failure's
// screenshots, console logs and traces are saved by the harness), sign-up
// through the UI (the first user creates a workspace, the others join
// through an invite link the first one makes), chats, and expect-style
// waits that say what they saw.
import { randomBytes } from "node:crypto";
import { waitFor } from "./harness.mjs";

export const TIMEOUT = 15_000;

/**
 * Runs `body(s)` with a helper `s` for scenario `name` of run.mjs's `ctx`;
 * afterwards fails if a page threw an uncaught exception.
 */
export async function scenario(ctx, name, body) {
  const users = [];
  const run = randomBytes(4).toString("hex");
  const s = {
    url: ctx.env.url,
    run,
    /** A fresh user (its own context and storage) and its page. */
    async newPage(label) {
      const user = await ctx.newUser(label);
      user.page.setDefaultTimeout(TIMEOUT);
      users.push(user);
      return user.page;
    },
    killGateway: (instance) => ctx.killGateway(instance),
    email(first) {
      return `${first.toLowerCase()}-${run}-${randomBytes(3).toString("hex")}@acme.test`;
    },
  };
  await body(s);
  for (const user of users) {
    const thrown = user.errors.filter((e) => e.startsWith("[pageerror]"));
    if (thrown.length) throw new Error(`${name}: ${user.name}'s page threw:\n  ${thrown.join("\n  ")}`);
  }
}

/** Polls `check` (truthy when done) until `timeout`. */
export function waitUntil(what, check, timeout = TIMEOUT) {
  return waitFor(what, check, { timeout });
}

export async function expectText(locator, pattern, timeout = TIMEOUT) {
  let text = "";
  await waitUntil(`${locator} to have text ${pattern}`, async () => {
    text = (await locator.first().textContent({ timeout: 500 })) ?? "";
    return typeof pattern === "string" ? text.includes(pattern) : pattern.test(text);
  }, timeout).catch((e) => {
    throw new Error(`${e.message}; text was ${JSON.stringify(text)}`);
  });
}

export async function expectCount(locator, n, timeout = TIMEOUT) {
  let count = -1;
  await waitUntil(`${locator} to count ${n}`, async () => (count = await locator.count()) === n, timeout).catch((e) => {
    throw new Error(`${e.message}; count was ${count}`);
  });
}

export async function expectHidden(locator, timeout = TIMEOUT) {
  await locator.first().waitFor({ state: "hidden", timeout });
}

/** Signs up through the UI; with `inviteLink`, opens it (the form is pre-filled). */
export async function signUp(page, s, { name, email, password = "correct horse battery", workspace, inviteLink }) {
  if (inviteLink) {
    await page.goto(inviteLink);
  } else {
    await page.goto(s.url + "/");
    await page.getByRole("button", { name: "Create an account" }).click();
    await page.getByLabel("Create a new workspace").check();
    await page.getByLabel("Workspace name").fill(workspace ?? `Acme ${s.run}`);
  }
  await page.getByLabel("Full name").fill(name);
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await waitConnected(page);
}

/** Waits until the app is signed in and its socket is connected; returns the gateway instance. */
export async function waitConnected(page, timeout = TIMEOUT) {
  const status = page.getByTestId("connection");
  await expectText(status, /^connected \(/, timeout);
  return /\((.+)\)/.exec((await status.textContent()) ?? "")?.[1];
}

/** The first user creates an invite in the app and returns the link. */
export async function createInviteLink(page) {
  await page.getByRole("button", { name: "Invite people" }).click();
  const dialog = page.getByRole("dialog", { name: "Invite people" });
  await dialog.getByRole("button", { name: "Create invite" }).click();
  const link = dialog.getByLabel("Invite link");
  await waitUntil("the invite link", async () => /#(invite|token)=/.test(await link.inputValue()));
  const value = await link.inputValue();
  await dialog.getByRole("button", { name: "Close" }).click();
  return value;
}

/** Two users in one new workspace: A signs up, invites B, B signs up through the link. */
export async function twoUsers(s, names = ["Ada", "Bob"]) {
  const a = await s.newPage(names[0].toLowerCase());
  const b = await s.newPage(names[1].toLowerCase());
  const aName = `${names[0]} ${s.run}`;
  const bName = `${names[1]} ${s.run}`;
  await signUp(a, s, { name: aName, email: s.email(names[0]) });
  const link = await createInviteLink(a);
  await signUp(b, s, { name: bName, email: s.email(names[1]), inviteLink: link });
  return { a, b, aName, bName };
}

/** Creates a chat through the "New chat" dialog and waits until it is open. */
export async function createChat(page, { type = "Direct message", name, members }) {
  await page.getByRole("button", { name: "New chat" }).click();
  const dialog = page.getByRole("dialog", { name: "New chat" });
  await dialog.getByLabel(type).check();
  if (name) await dialog.getByLabel("Name", { exact: true }).fill(name);
  for (const m of members) await dialog.getByLabel(m).check();
  await dialog.getByRole("button", { name: "Create" }).click();
  await dialog.waitFor({ state: "hidden" });
  const title = type === "Direct message" ? members[0] : type.endsWith("channel") ? `#${name}` : name;
  await expectText(page.getByRole("heading", { level: 2, name: title }), title);
}

/** The chat-list entry whose title contains `title`. */
export function chatItem(page, title) {
  return page.getByRole("list", { name: "Chats" }).getByRole("button").filter({ hasText: title });
}

export async function openChat(page, title) {
  await chatItem(page, title).click();
  await expectText(page.getByRole("heading", { level: 2, name: title }), title);
}

/** Messages shown in the open chat whose text contains `text`. */
export function messages(page, text) {
  const all = page.getByTestId("message");
  return text === undefined ? all : all.filter({ hasText: text });
}

export async function send(page, text) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
}
