// Who may post in a chat: in a read-only (broadcast) channel only its owner
// and admins (docs/protocol.md, Chats); the server refuses anyone else's
// message.send with `forbidden`. The composer of such a channel is disabled
// with a line saying why, and follows the chat object (readOnly, ownerId)
// and the member list (roles) in the store, as `chat.updated` events
// change them or they are reloaded.
import type { Chat, ChatMember, Role } from "../client/types.js";
import type { Store } from "./store.js";

export const READ_ONLY_NOTICE = "Only the owner and admins can post in this channel.";

/** My role in a chat from its member list; undefined when the list is not loaded or I am not in it. */
export function roleOf(members: readonly ChatMember[] | undefined, userId: number): Role | undefined {
  return members?.find((m) => m.userId === userId)?.role;
}

/**
 * Whether `myUserId` may post in `chat`. Anyone may outside read-only
 * channels; in one, its owner (by `ownerId` or by role) and admins. An
 * unknown role (member list not loaded yet) counts as allowed: the server
 * decides, and the list arrives with the chat's first render.
 */
export function canPost(
  chat: Pick<Chat, "readOnly" | "ownerId"> | undefined,
  myUserId: number,
  myRole: Role | undefined,
): boolean {
  if (!chat?.readOnly) return true;
  if (chat.ownerId === myUserId) return true;
  return myRole === undefined || myRole === "owner" || myRole === "admin";
}

/** Why I may not post in `chat` (shown instead of the composer), or null when I may. */
export function postingNotice(
  chat: Pick<Chat, "readOnly" | "ownerId"> | undefined,
  myUserId: number,
  myRole: Role | undefined,
): string | null {
  return canPost(chat, myUserId, myRole) ? null : READ_ONLY_NOTICE;
}

/**
 * Keeps `box` blocked (with the notice) while I may not post in `chatId`,
 * following the store's chats and members; returns the unsubscribe.
 */
export function gatePosting(store: Store, chatId: number, box: { setBlocked(notice: string | null): void }): () => void {
  const update = () =>
    box.setBlocked(postingNotice(store.chats.get(chatId), store.me.id, roleOf(store.members.get(chatId), store.me.id)));
  const offs = [store.on("chats", update), store.on("members", update)];
  update();
  return () => {
    for (const off of offs) off();
  };
}
