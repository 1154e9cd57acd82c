// Two users chat in a direct chat: sign-up through the UI (the second
// through the first one's invite link), send and receive both ways, the
// typing indicator shows and clears, "Seen by" appears once the other has
// read, and an edit, a delete and a reaction reach the other side.
import { createChat, expectCount, expectHidden, expectText, messages, openChat, scenario, send, twoUsers } from "./app_steps.mjs";

export default async function (ctx) {
  await scenario(ctx, "10-chat", async (s) => {
    const { a, b, aName, bName } = await twoUsers(s);

    await createChat(a, { type: "Direct message", members: [bName] });
    await send(a, "hello from ada");
    await expectCount(messages(a, "hello from ada"), 1);

    // B: the chat appears (membership.changed) with an unread badge.
    await openChat(b, aName);
    await expectCount(messages(b, "hello from ada"), 1);

    // Typing: B types, A sees "… is typing", then it clears when B sends.
    const box = b.getByLabel("Message", { exact: true });
    await box.fill("");
    await box.pressSequentially("hi ada", { delay: 30 });
    await expectText(a.getByTestId("typing"), `${bName} is typing`);
    await box.press("Enter");
    await expectCount(messages(a, "hi ada"), 1);
    // Cleared by the message itself, well before the indicator's 6 s expiry.
    await expectText(a.getByTestId("typing"), /^$/, 3000);

    // Read receipt: A's message was read by B (B has the chat open and focused).
    await send(a, "did you read this?");
    await expectCount(messages(b, "did you read this?"), 1);
    await expectText(a.getByTestId("seen"), `Seen by ${bName}`);

    // Edit: A edits the message; B sees the new text and "edited".
    const mine = messages(a, "did you read this?");
    await mine.hover();
    await mine.getByRole("button", { name: "Edit" }).click();
    const editBox = a.getByLabel("Edit message");
    await editBox.fill("did you read this? (edited)");
    await editBox.press("Enter");
    await expectCount(messages(b, "did you read this? (edited)"), 1);
    await expectText(messages(b, "did you read this? (edited)").locator(".edited"), "(edited)");

    // Reaction: B reacts with 👍 on A's first message; A sees the count.
    const first = messages(b, "hello from ada");
    await first.hover();
    await first.getByRole("button", { name: "React with 👍" }).click();
    await expectText(messages(a, "hello from ada").getByRole("button", { name: /👍 1/ }), "1");

    // Delete: B deletes own message; A sees it gone.
    const own = messages(b, "hi ada");
    await own.hover();
    await own.getByRole("button", { name: "Delete" }).click();
    await own.getByRole("button", { name: "Confirm delete" }).click();
    await expectHidden(messages(a, "hi ada"));
    await expectCount(a.getByTestId("message").filter({ hasText: "message deleted" }), 1);
  });
}
