// Reconnect: the test kills the gateway B's page is on while A keeps
// sending; B's page shows "reconnecting…", recovers through the other
// gateway, and shows every message exactly once and in order; a message
// B sends while disconnected is delivered once.
import { createChat, expectCount, expectText, messages, openChat, scenario, send, twoUsers, waitConnected, waitUntil } from "./app_steps.mjs";

export default async function (ctx) {
  await scenario(ctx, "30-reconnect", async (s) => {
    const { a, b, aName, bName } = await twoUsers(s);
    await createChat(a, { type: "Direct message", members: [bName] });
    await send(a, "before 0");
    await openChat(b, aName);
    await expectCount(messages(b, "before 0"), 1);

    const bGateway = await waitConnected(b);
    const aGateway = await waitConnected(a);
    const chatId = Number(await a.getByTestId("chat-view").getAttribute("data-chat-id"));

    // A sends over the socket when on the other gateway, otherwise over REST
    // (A's socket dies with the gateway too).
    const sendA = async (text, i) => {
      if (aGateway !== bGateway) return send(a, text);
      const res = await a.evaluate(
        async ({ chatId, text, i }) => {
          for (let attempt = 0; attempt < 20; attempt++) {
            // Read each time: tokens of this pool live 90 s and the page refreshes them.
            const token = JSON.parse(localStorage.getItem("fechatter.session") ?? "null")?.accessToken;
            const r = await fetch(`/api/chat/${chatId}/messages`, {
              method: "POST",
              headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
              body: JSON.stringify({ content: text, clientId: `e2e-${i}` }),
            }).catch(() => null);
            if (r && r.status === 201) return 201;
            await new Promise((res) => setTimeout(res, 300));
          }
          return 0;
        },
        { chatId, text, i },
      );
      if (res !== 201) throw new Error(`REST send of ${text} failed`);
    };

    await s.killGateway(bGateway);
    // Seen together: the reconnect may take well under a second.
    await Promise.all([
      expectText(b.getByTestId("connection"), /reconnecting|offline|connecting/),
      expectText(b.getByTestId("banner"), "Messages will be sent when you reconnect"),
    ]);
    // B writes while its connection is down: queued, sent after the reconnect.
    await send(b, "bob while away");
    const texts = [];
    for (let i = 1; i <= 5; i++) {
      texts.push(`during ${i}`);
      await sendA(`during ${i}`, i);
    }
    const after = await waitConnected(b, 45_000);
    if (after === bGateway) throw new Error(`B reconnected to the killed gateway ${bGateway}`);
    await sendA("after 6", 6);
    texts.push("after 6");

    // Every message exactly once, in order, on both sides.
    for (const t of texts) await expectCount(messages(b, t), 1, 30_000);
    await expectCount(messages(b, "bob while away"), 1, 30_000);
    await expectCount(messages(a, "bob while away"), 1, 30_000);
    await waitUntil("B's messages in order", async () => {
      const shown = (await b.getByTestId("message").locator(".content").allTextContents()).filter((t) => /^(before|during|after) /.test(t));
      return JSON.stringify(shown) === JSON.stringify(["before 0", ...texts]);
    });
    await expectText(b.getByTestId("message").filter({ hasText: "bob while away" }), /./);
    const pending = await b.getByTestId("message").filter({ hasText: "bob while away" }).locator(".state").count();
    if (pending) await expectCount(b.getByTestId("message").filter({ hasText: "bob while away" }).locator(".state"), 0, 20_000);
  });
}
