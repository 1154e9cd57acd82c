// The wire types of docs/protocol.md, as the client library sees them.
// Everything is camelCase JSON; ids are numbers (session ids are UUIDs);
// timestamps are RFC 3339 strings.

export type Role = "owner" | "admin" | "member";
export type ChatType = "single" | "group" | "private_channel" | "public_channel";
export type PresenceStatus = "online" | "away" | "dnd" | "brb" | "offline";
export type NotifyLevel = "all" | "mentions_only" | "off";

export interface User {
  id: number;
  fullname: string;
  email: string;
  workspaceId: number;
  role: Role;
  active: boolean;
}

/** The body of sign-up (direct mode), sign-in and refresh. */
export interface AuthResponse {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
  sessionId: string;
  user: User;
}

/** What the client keeps of a session (persisted by a TokenStore). */
export interface Session {
  accessToken: string;
  refreshToken: string;
  /** Epoch milliseconds when the access token expires (client clock). */
  expiresAt: number;
  sessionId: string;
  user: User;
}

export interface Chat {
  id: number;
  workspaceId: number;
  type: ChatType;
  name: string | null;
  description: string;
  ownerId: number;
  /** A broadcast channel: only its owner and admins post (docs/protocol.md, Chats). */
  readOnly: boolean;
  lastSeq: number;
  memberCount: number;
  createdAt: string;
  updatedAt: string;
  /** Present in GET /api/chat. */
  unreadCount?: number;
  mentionCount?: number;
}

/** A member's new role, as `chat.updated` names it (`roles`). */
export interface RoleChange {
  userId: number;
  role: Role;
}

export interface ChatMember {
  userId: number;
  fullname: string;
  role: Role;
  lastReadSeq: number;
  joinedAt: string;
}

export interface Reaction {
  emoji: string;
  userIds: number[];
  count: number;
}

export interface Message {
  id: number;
  chatId: number;
  seq: number;
  senderId: number;
  content: string;
  clientId: string | null;
  replyTo: number | null;
  mentions: number[];
  createdAt: string;
  editedAt: string | null;
  deletedAt: string | null;
  /** Present in REST pages; kept current from message.reaction events. */
  reactions?: Reaction[];
}

export interface Invite {
  id: number;
  email: string | null;
  singleUse: boolean;
  uses: number;
  createdBy: number;
  expiresAt: string;
  revokedAt: string | null;
  createdAt: string;
  /** Only in the answer that created it. */
  token?: string;
}

export interface NotificationPreferences {
  level: NotifyLevel;
  desktop: boolean;
  sound: boolean;
  dndSchedule: { start: string; end: string; timezone: string } | null;
  keywords: string[];
}

export interface ChatNotificationSettings {
  chatId: number;
  level: NotifyLevel | null;
  mutedUntil: string | null;
  pinned: boolean;
}

export interface SearchResult {
  type: "message" | "person" | "channel";
  score: number;
  highlight: Record<string, string[]>;
  message?: {
    messageId: number;
    chatId: number;
    seq: number;
    senderId: number;
    senderName: string;
    content: string;
    timestamp: string;
  };
  person?: { userId: number; displayName: string; email: string; avatar: null; status: PresenceStatus };
  channel?: {
    channelId: number;
    teamId: number;
    name: string;
    description: string;
    chatType: ChatType;
    member: boolean;
  };
}

export interface SearchPage {
  scope: "messages" | "people" | "chats";
  results: SearchResult[];
  cursor: string | null;
}

export interface PresenceState {
  userId: number;
  status: PresenceStatus;
  lastSeen: string | null;
}

/** Every frame, both ways. */
export interface Frame<P = any> {
  type: string;
  id: string;
  timestamp: string;
  payload: P;
}

export interface SessionReady {
  userId: number;
  sessionId: string;
  connectionId: number;
  instance: string;
  chats: number[];
  heartbeatIntervalMs: number;
  maxFrameBytes: number;
  tokenExpiresAt: string;
  userEventId: string;
  unreadTotal: number;
  mentionTotal: number;
}

export interface Toast {
  userEventId: string;
  id: string;
  groupId: string;
  title: string;
  body: string;
  chatId: number;
  messageId: number;
  priority: "normal" | "urgent";
  count: number;
  timestamp: string;
}

export interface Badge {
  chatId: number;
  unreadCount: number;
  mentionCount: number;
}
