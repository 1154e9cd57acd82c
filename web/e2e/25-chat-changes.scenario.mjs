// Chat changes arrive live (chat.updated): B has a channel open when A
// renames it and makes it read-only, then hands it to B. Without a reload
// or a refocus, B's chat list shows the new name, B's composer is
// disabled with the notice, and enabled again once B owns the channel.
import { chatItem, createChat, expectCount, expectHidden, expectText, messages, openChat, scenario, send, twoUsers } from "./app_steps.mjs";

/** PATCH `path` as the user of `page` (the app has no form for it). */
async function patch(page, path, body) {
  const status = await page.evaluate(
    async ({ path, body }) => {
      const token = JSON.parse(sessionStorage.getItem("fechatter.session") ?? localStorage.getItem("fechatter.session") ?? "null")?.accessToken;
      const r = await fetch(path, {
        method: "PATCH",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: body === null ? undefined : JSON.stringify(body),
      });
      return r.status;
    },
    { path, body },
  );
  if (status !== 200) throw new Error(`PATCH ${path}: ${status}`);
}

export default async function (ctx) {
  await scenario(ctx, "25-chat-changes", async (s) => {
    const { a, b, bName } = await twoUsers(s);
    const name = `news-${s.run}`;
    await createChat(a, { type: "Private channel", name, members: [bName] });
    await send(a, "first post");
    const chatId = Number(await a.getByTestId("chat-view").getAttribute("data-chat-id"));

    await openChat(b, `#${name}`);
    await expectCount(messages(b, "first post"), 1);
    const notice = b.getByTestId("composer-notice");
    await expectHidden(notice);

    await patch(a, `/api/chat/${chatId}`, { name: `${name}-ro`, readOnly: true });
    await expectText(notice, "Only the owner and admins can post");
    await expectCount(chatItem(b, `#${name}-ro`), 1);
    if (!(await b.locator("#composer").isDisabled())) throw new Error("B's composer is still enabled");

    const me = await b.evaluate(() => JSON.parse(sessionStorage.getItem("fechatter.session") ?? localStorage.getItem("fechatter.session") ?? "null")?.user?.id);
    await patch(a, `/api/chat/${chatId}/members/${me}`, null);
    await expectHidden(notice);
    await send(b, "mine to post now");
    await expectCount(messages(a, "mine to post now"), 1);
  });
}
