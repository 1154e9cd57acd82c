// Token refresh on a live connection: the pool under test issues access
// tokens for 90 s (gateway/tests/web_client.rs), so 60 s before expiry,
// 30 s after connecting, the gateway sends `token.refresh`; the page gets
// a new token over REST and hands it to the socket (`auth.refresh`,
// acked with the new expiry) without reconnecting, and keeps chatting.
import { createChat, expectCount, openChat, scenario, send, twoUsers, waitConnected, waitUntil } from "./app_steps.mjs";

export default async function (ctx) {
  await scenario(ctx, "50-token-refresh", async (s) => {
    const { a, b, aName, bName } = await twoUsers(s);
    const sockets = [];
    const seen = { refreshFrame: false, authRefresh: null, ack: null, rest: 0 };
    a.on("request", (r) => r.url().endsWith("/api/refresh") && seen.rest++);
    a.on("websocket", (ws) => {
      sockets.push(ws);
      ws.on("framereceived", ({ payload }) => {
        const f = JSON.parse(String(payload));
        if (f.type === "token.refresh") seen.refreshFrame = true;
        if (f.type === "ack" && seen.authRefresh && f.payload.refId === seen.authRefresh) seen.ack = f.payload;
      });
      ws.on("framesent", ({ payload }) => {
        const f = JSON.parse(String(payload));
        if (f.type === "auth.refresh") seen.authRefresh = f.id;
      });
    });
    // A fresh socket, observed from its first frame.
    await a.reload();
    const gateway = await waitConnected(a);
    await createChat(a, { type: "Direct message", members: [bName] });
    await openChat(b, aName);

    await waitUntil("token.refresh, then auth.refresh acked with a new expiry", async () => seen.ack !== null, 60_000);
    if (!seen.refreshFrame) throw new Error("auth.refresh was sent without a token.refresh frame");
    if (seen.rest < 1) throw new Error("the new token did not come from POST /api/refresh");
    if (!seen.ack.expiresAt || seen.ack.status !== "ok") throw new Error(`unexpected ack ${JSON.stringify(seen.ack)}`);
    if (sockets.length !== 1) throw new Error(`the page opened ${sockets.length} sockets: a refresh must not reconnect`);
    if ((await waitConnected(a)) !== gateway) throw new Error("the page moved to another gateway");

    await send(a, "after the refresh");
    await expectCount(b.getByTestId("message").filter({ hasText: "after the refresh" }), 1, 15_000);
  });
}
