// Badges and toasts for another chat: B has chat 1 open; A posts in chat 2;
// B sees the unread badge on chat 2 and a toast; clicking the toast opens
// chat 2 and its badge clears. A click on a chat whose list re-renders
// between the press and the release (a message arriving) still opens it.
import { chatItem, createChat, expectCount, expectHidden, expectText, messages, openChat, scenario, send, twoUsers } from "./app_steps.mjs";

export default async function (ctx) {
  await scenario(ctx, "20-badges", async (s) => {
    const { a, b, bName } = await twoUsers(s);
    const one = `one-${s.run}`;
    const two = `two-${s.run}`;

    await createChat(a, { type: "Private channel", name: one, members: [bName] });
    await send(a, "welcome to one");
    await createChat(a, { type: "Private channel", name: two, members: [bName] });
    await send(a, "welcome to two");

    await openChat(b, `#${one}`);
    await expectCount(messages(b, "welcome to one"), 1);
    // Chat 2 has one unread message from before (shown with a badge).
    await expectText(chatItem(b, `#${two}`).getByTestId("unread-badge"), "1");

    // A mentions B in chat 2 (a mention alerts at the default level).
    const first = bName.split(" ")[0];
    await send(a, `@${first} please look at this`);
    await expectText(chatItem(b, `#${two}`).getByTestId("unread-badge"), "2");
    await expectText(chatItem(b, `#${two}`).getByTestId("mention-badge"), "@1");
    const toast = b.getByTestId("toast").filter({ hasText: `#${two}` });
    await expectText(toast, "please look at this");
    await expectText(b.getByTestId("totals"), "2");

    await toast.getByRole("button", { name: new RegExp(`#${two}`) }).click();
    await expectText(b.getByRole("heading", { level: 2, name: `#${two}` }), two);
    await expectCount(messages(b, "please look at this"), 1);
    await expectHidden(chatItem(b, `#${two}`).getByTestId("unread-badge"));
    await expectHidden(chatItem(b, `#${two}`).getByTestId("mention-badge"));
    await expectHidden(toast);

    // The chat list re-renders on every badge. B presses on chat 1 (at the
    // top after A's post), A posts again (the list re-renders under the
    // pointer), B releases: the click must still open chat 1.
    await openChat(a, `#${one}`);
    await send(a, "back in one");
    await expectText(chatItem(b, `#${one}`).getByTestId("unread-badge"), "1");
    const box = await chatItem(b, `#${one}`).boundingBox();
    await b.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await b.mouse.down();
    await send(a, "still in one");
    await expectText(chatItem(b, `#${one}`).getByTestId("unread-badge"), "2");
    await b.mouse.up();
    await expectText(b.getByRole("heading", { level: 2, name: `#${one}` }), one);
    await expectCount(messages(b, "still in one"), 1);
  });
}
