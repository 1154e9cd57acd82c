// Search: messages with distinct words are found through the search box
// with the words highlighted; from:@name narrows to one sender; choosing a
// result opens its chat at that message.
import { createChat, expectCount, expectText, messages, openChat, scenario, send, twoUsers, waitUntil } from "./app_steps.mjs";

export default async function (ctx) {
  await scenario(ctx, "40-search", async (s) => {
    const { a, b, bName } = await twoUsers(s);
    const word = `zebra${s.run}`;
    const channel = `search-${s.run}`;
    await createChat(a, { type: "Private channel", name: channel, members: [bName] });
    await send(a, `the ${word} budget is ready`);
    await send(a, "unrelated words only");
    await openChat(b, `#${channel}`);
    await expectCount(messages(b, "unrelated words only"), 1);
    await send(b, `another ${word} from bob`);
    await expectCount(messages(a, "from bob"), 1);
    // Move A elsewhere so that opening the result changes the chat.
    await createChat(a, { type: "Direct message", members: [bName] });

    const search = async (page, q) => {
      await page.getByRole("searchbox", { name: "Search messages" }).fill(q);
      await page.getByRole("searchbox", { name: "Search messages" }).press("Enter");
      const dialog = page.getByRole("dialog", { name: `Search: ${q}` });
      await dialog.waitFor();
      return dialog;
    };

    let results = await search(a, word);
    await expectCount(results.getByRole("list", { name: "Search results" }).getByRole("listitem"), 2);
    await expectText(results.locator("mark").first(), word);
    await results.getByRole("button", { name: "Close" }).click();

    results = await search(a, `from:@${bName.split(" ")[0]} ${word}`);
    const items = results.getByRole("list", { name: "Search results" }).getByRole("listitem");
    await expectCount(items, 1);
    await expectText(items.first(), "from bob");

    await items.first().getByRole("button").click();
    await expectText(a.getByRole("heading", { level: 2, name: `#${channel}` }), channel);
    await waitUntil("the result message to be marked", async () => (await messages(a, "from bob").getAttribute("class"))?.includes("target"));
  });
}
