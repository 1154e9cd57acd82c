// What the message view needs from the live connection, as an interface:
// live.ts implements it over the client library (Realtime and its message
// cache), so the view never touches frames or the cache's internals.
import type { Reaction } from "../client/types.js";

export interface ShownMessage {
  /** Stable key: "m<id>" once committed, "p<clientId>" while pending. */
  key: string;
  id: number | null;
  seq: number | null;
  senderId: number;
  content: string;
  replyTo: number | null;
  mentions: number[];
  createdAt: string;
  editedAt: string | null;
  deletedAt: string | null;
  reactions: Reaction[];
  state: "sent" | "sending" | "failed";
}

/** What the message view needs from the live connection. */
export interface Feed {
  list(chatId: number): ShownMessage[];
  hasOlder(chatId: number): boolean;
  /** Whether the newest page has arrived (an empty list then means an empty chat). */
  loaded(chatId: number): boolean;
  loadOlder(chatId: number): Promise<void>;
  /** Loads pages until `seq` is in the list (search results). */
  loadUntil(chatId: number, seq: number): Promise<void>;
  onChange(chatId: number, fn: () => void): () => void;
  send(chatId: number, content: string, replyTo: number | null): void;
  retry(chatId: number, key: string): void;
  discard(chatId: number, key: string): void;
  edit(chatId: number, messageId: number, content: string): Promise<void>;
  remove(chatId: number, messageId: number): Promise<void>;
  react(chatId: number, messageId: number, emoji: string, add: boolean): Promise<void>;
  markRead(chatId: number, seq: number): void;
  typing(chatId: number, active: boolean): void;
}
