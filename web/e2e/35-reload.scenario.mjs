// A reload keeps the recent past: B's page is reloaded while A keeps
// writing; the reloaded page shows the cached messages, catches up on what
// was sent meanwhile (sync from the saved cursor), and shows every message
// exactly once, in order. A message B sends right before the reload
// arrives once whether or not its ack beat the reload (an unanswered send
// is saved with the cache and sent again, same id, by the new page).
import { createChat, expectCount, messages, openChat, scenario, send, twoUsers, waitConnected, waitUntil } from "./app_steps.mjs";

export default async function (ctx) {
  await scenario(ctx, "35-reload", async (s) => {
    const { a, b, aName, bName } = await twoUsers(s);
    await createChat(a, { type: "Direct message", members: [bName] });
    const texts = [];
    for (let i = 1; i <= 3; i++) {
      texts.push(`early ${i}`);
      await send(a, `early ${i}`);
    }
    await openChat(b, aName);
    for (const t of texts) await expectCount(messages(b, t), 1);

    // B sends and reloads at once; A writes while B's page is gone.
    await send(b, "sent before the reload");
    const reloading = b.reload();
    for (let i = 1; i <= 3; i++) {
      texts.push(`meanwhile ${i}`);
      await send(a, `meanwhile ${i}`);
    }
    await reloading;
    await waitConnected(b);
    await openChat(b, aName);

    for (const t of texts) await expectCount(messages(b, t), 1, 20_000);
    await expectCount(messages(a, "sent before the reload"), 1, 20_000);
    await expectCount(messages(b, "sent before the reload"), 1, 20_000);
    await waitUntil("B's messages in order", async () => {
      const shown = (await b.getByTestId("message").locator(".content").allTextContents()).filter((t) => /^(early|meanwhile) /.test(t));
      return JSON.stringify(shown) === JSON.stringify(texts);
    });
  });
}
