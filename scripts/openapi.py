#!/usr/bin/env python3
"""Writes docs/openapi.json, the OpenAPI 3.1 description of the REST API.

The gateway serves the file at /api/openapi.json (compiled in). The test
gateway/tests/openapi.rs keeps it in step with the code: every route the
gateway source registers is described here and every described route is
served; `make test` also fuzzes a live gateway against it (schemathesis).
Edit this script, run it, commit both. `scripts/openapi.py PATH` writes
elsewhere (make test compares).
"""
import json
import pathlib

def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}

def ok(status, schema=None, desc="success", content_type="application/json"):
    r = {"description": desc}
    if schema is not None:
        r["content"] = {content_type: {"schema": schema}}
    return {str(status): r}

def op(summary, responses, body=None, auth=True, params=None, tag="chats"):
    o = {"summary": summary, "tags": [tag], "responses": {**responses, "default": {
        "description": "error (see docs/protocol.md for the codes)",
        "content": {"application/json": {"schema": ref("Error")}}}}}
    if body is not None:
        o["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if not auth:
        o["security"] = []
    if params:
        o["parameters"] = params
    return o

def path_id(name="id", desc="id"):
    return {"name": name, "in": "path", "required": True, "description": desc,
            "schema": {"type": "integer", "format": "int64"}}

def query_str(name, desc, required=False):
    return {"name": name, "in": "query", "required": required, "description": desc,
            "schema": {"type": "string", **({"minLength": 1} if required else {})}}

def query_int(name, desc):
    return {"name": name, "in": "query", "required": False, "description": desc,
            "schema": {"type": "integer", "format": "int64"}}

S = lambda **kw: {"type": "string", **kw}
I = {"type": "integer", "format": "int64"}
B = {"type": "boolean"}
TS = S(format="date-time")

def obj(props, required=None, additional=True):
    o = {"type": "object", "properties": props,
         "required": list(props) if required is None else required}
    if not additional:
        o["additionalProperties"] = False
    return o

N = {"type": "number"}

schemas = {
    "Posted": obj({"messageId": I, "seq": I, "duplicate": B}, required=["messageId", "seq"]),
    "SearchResults": obj({"scope": S(enum=["messages", "people", "chats"]),
                          "results": {"type": "array", "items": {"$ref": "#/components/schemas/SearchResult"}},
                          "cursor": {"type": ["string", "null"]}}),
    "SearchResult": obj({
        "type": S(enum=["message", "person", "channel"]), "score": N,
        "highlight": obj({"content": {"type": "array", "items": S()},
                          "senderName": {"type": "array", "items": S()}}, required=[]),
        "message": obj({"messageId": I, "chatId": I, "seq": I, "senderId": I, "senderName": S(),
                        "content": S(), "timestamp": TS}),
        "person": obj({"userId": I, "displayName": S(), "email": S(),
                       "avatar": {"type": ["string", "null"]}, "status": S()}),
        "channel": obj({"channelId": I, "teamId": I, "name": S(), "description": S(),
                        "chatType": S(), "member": B}),
    }, required=["type", "score", "highlight"]),
    "Error": obj({"error": obj({"code": S(), "message": S(), "retryAfterMs": I},
                               required=["code", "message"])}),
    "User": obj({"id": I, "fullname": S(), "email": S(), "workspaceId": I,
                 "role": S(enum=["owner", "admin", "member"]), "active": B}),
    "AuthResponse": obj({"accessToken": S(), "refreshToken": S(), "expiresIn": I,
                         "sessionId": S(format="uuid"), "user": ref("User")}),
    "Chat": obj({"id": I, "workspaceId": I,
                 "type": S(enum=["single", "group", "private_channel", "public_channel"]),
                 "name": {"type": ["string", "null"]}, "description": S(), "ownerId": I,
                 "readOnly": B, "lastSeq": I, "memberCount": I, "createdAt": TS, "updatedAt": TS}),
    "Member": obj({"userId": I, "fullname": S(), "role": S(), "lastReadSeq": I, "joinedAt": TS}),
    "Message": obj({"id": I, "chatId": I, "seq": I, "senderId": I, "content": S(),
                    "clientId": S(), "replyTo": {"type": ["integer", "null"]},
                    "mentions": {"type": "array", "items": I},
                    "priority": S(enum=["normal", "urgent"]), "createdAt": TS,
                    "editedAt": {"type": ["string", "null"], "format": "date-time"},
                    "deletedAt": {"type": ["string", "null"], "format": "date-time"}}),
    "Reaction": obj({"emoji": S(), "userIds": {"type": "array", "items": I}, "count": I}),
    "Invite": obj({"id": I, "email": {"type": ["string", "null"]}, "singleUse": B, "uses": I,
                   "createdBy": I, "expiresAt": TS,
                   "revokedAt": {"type": ["string", "null"], "format": "date-time"},
                   "createdAt": TS}),
    "ArchiveSetting": obj({"archiveAfterDays": {"type": ["integer", "null"], "minimum": 30, "maximum": 36500}},
                          additional=False),
    "Domains": obj({"domains": {"type": "array", "maxItems": 50,
                                "items": S(minLength=1, maxLength=253)}}, additional=False),
    "Preferences": obj({"level": S(enum=["all", "mentions_only", "off"]), "desktop": B, "sound": B,
                        "dndSchedule": {"oneOf": [{"type": "null"},
                                                  obj({"start": S(pattern="^[0-2][0-9]:[0-5][0-9]$"),
                                                       "end": S(pattern="^[0-2][0-9]:[0-5][0-9]$"),
                                                       "timezone": S(minLength=1, maxLength=64)},
                                                      additional=False)]},
                        "keywords": {"type": "array", "maxItems": 20, "items": S(maxLength=50)}},
                       required=["level", "desktop", "sound"]),
    "ChatSettings": obj({"chatId": I, "level": {"type": ["string", "null"], "enum": ["all", "mentions_only", "off", None]},
                         "mutedUntil": {"type": ["string", "null"], "format": "date-time"}, "pinned": B}),
    "Device": obj({"id": I, "platform": S(enum=["fcm", "apns", "webpush", "webhook"]), "token": S(),
                   "p256dh": S(), "auth": S(), "createdAt": TS}, required=["id", "platform", "token", "createdAt"]),
    "Live": obj({"status": S(enum=["ok", "draining"]), "instance": S()}),
}
schemas["ChatSummary"] = {"allOf": [ref("Chat"), obj({"unreadCount": I, "mentionCount": I})]}
schemas["CreatedInvite"] = {"allOf": [ref("Invite"), obj({"token": S()})]}
schemas["PagedMessage"] = {"allOf": [ref("Message"), obj({"reactions": {"type": "array", "items": ref("Reaction")}})]}

signup = obj({"fullname": S(minLength=1, maxLength=100), "email": S(format="email", maxLength=254),
              "password": S(minLength=8, maxLength=128), "workspace": S(minLength=1, maxLength=64),
              "inviteToken": S(), "workspaceId": I}, required=["fullname", "email", "password"])
member_ids = obj({"userIds": {"type": "array", "items": I, "maxItems": 1000}})
arr = lambda s: {"type": "array", "items": s}

paths = {
    "/api/signup": {"post": op("Sign up: exactly one of a new workspace (owner), an invite, or a workspace "
                               "that allows the e-mail's domain (verified mode). Direct mode answers 201 "
                               "with tokens; verified mode answers 202 and mails a link",
                               {**ok(201, ref("AuthResponse"), desc="SIGNUP_MODE=direct"),
                                **ok(202, obj({"status": S(enum=["verification_sent"]), "expiresInSecs": I}),
                                     desc="SIGNUP_MODE=verified: the same answer whether or not the e-mail has an account")},
                               body=signup, auth=False, tag="auth")},
    "/api/signup/verify": {"post": op("Follow a mailed sign-up link: creates the account",
                                      ok(201, ref("AuthResponse")), auth=False, tag="auth",
                                      body=obj({"token": S(minLength=1, maxLength=200)}, additional=False))},
    "/api/signin": {"post": op("Sign in", ok(200, ref("AuthResponse")), auth=False, tag="auth",
                               body=obj({"email": S(), "password": S()}))},
    "/api/refresh": {"post": op("Rotate a refresh token (10 s grace for concurrent use)",
                                ok(200, ref("AuthResponse")), auth=False, tag="auth",
                                body=obj({"refreshToken": S()}))},
    "/api/logout": {"post": op("End the calling session and the refresh token's family",
                               ok(204, desc="session ended"), tag="auth",
                               body=obj({"refreshToken": S()}))},
    "/api/me/password": {"post": op("Change the password; every other session ends",
                                    ok(204, desc="changed"), tag="auth",
                                    body=obj({"currentPassword": S(), "newPassword": S(minLength=8, maxLength=128)}))},
    "/api/users": {"get": op("Users of the caller's workspace", ok(200, arr(ref("User"))), tag="workspace")},
    "/api/chat": {
        "get": op("The caller's chats with the caller's unread and mention counts",
                  ok(200, arr(ref("ChatSummary")))),
        "post": op("Create a chat (an existing single chat of the pair answers 200)",
                   {**ok(201, ref("Chat")), **ok(200, ref("Chat"), desc="the pair's existing single chat")},
                   body=obj({"type": S(enum=["single", "group", "private_channel", "public_channel"]),
                             "name": {"type": ["string", "null"]}, "description": {"type": ["string", "null"]},
                             "readOnly": {"type": ["boolean", "null"]}, "members": arr(I)}, required=["type"], additional=False)),
    },
    "/api/chat/{id}": {
        "get": op("A visible chat", ok(200, ref("Chat")), params=[path_id()]),
        "patch": op("Rename, describe or make read-only a chat (committed by the chat's worker, announced as chat.updated)", ok(200, ref("Chat")), params=[path_id()],
                    body=obj({"name": {"type": ["string", "null"]}, "description": {"type": ["string", "null"]},
                              "readOnly": {"type": ["boolean", "null"]}},
                             required=[], additional=False)),
        "delete": op("Delete a chat (owner)", ok(204, desc="deleted"), params=[path_id()]),
    },
    "/api/chat/{id}/members": {
        "get": op("Members of a chat", ok(200, arr(ref("Member"))), params=[path_id()]),
        "post": op("Add members", ok(200, arr(ref("Member"))), params=[path_id()], body=member_ids),
        "delete": op("Remove members (or leave)", ok(200, arr(ref("Member"))), params=[path_id()], body=member_ids),
    },
    "/api/chat/{id}/members/{user_id}": {
        "patch": op("Transfer ownership to a member (committed by the chat's worker, announced as chat.updated)", ok(200, ref("Chat")),
                    params=[path_id(), path_id("user_id", "the new owner")]),
    },
    "/api/chat/{id}/join": {"post": op("Join a public channel", ok(200, ref("Chat")), params=[path_id()])},
    "/api/chat/{id}/messages": {
        "get": op("A page of messages in seq order", ok(200, obj({"messages": arr(ref("PagedMessage")), "hasMore": B})),
                  params=[path_id(), query_int("beforeSeq", "page backwards"),
                          query_int("afterSeq", "page forwards"),
                          query_int("limit", "1 to 200, default 50")]),
        "post": op("Post a message through the durable pipeline; answered after commit, idempotent by clientId",
                   {**ok(201, ref("Posted"))}, params=[path_id()],
                   body=obj({"content": S(minLength=1, maxLength=16000), "clientId": S(minLength=1, maxLength=100),
                             "mentions": arr(I), "replyTo": {"type": ["integer", "null"], "format": "int64"},
                             "priority": {"type": ["string", "null"], "enum": ["normal", "urgent", None]}},
                            required=["content", "clientId"], additional=False)),
    },
    "/api/search/messages": {
        "get": op("Search messages of the caller's chats (query language in docs/protocol.md)",
                  ok(200, ref("SearchResults")), tag="search",
                  params=[query_str("q", "the query, 1-512 characters", required=True),
                          query_int("chatId", "only this chat"),
                          query_str("cursor", "from the previous page"),
                          query_int("limit", "1 to 50, default 20"),
                          {"name": "includePublic", "in": "query", "required": False,
                           "description": "also public channels not joined", "schema": B}]),
    },
    "/api/search/people": {
        "get": op("People of the workspace by name or e-mail prefix", ok(200, ref("SearchResults")), tag="search",
                  params=[query_str("q", "prefix, 1-512 characters", required=True),
                          query_int("limit", "1 to 50, default 20")]),
    },
    "/api/search/chats": {
        "get": op("The caller's chats and public channels by name", ok(200, ref("SearchResults")), tag="search",
                  params=[query_str("q", "part of the name, 1-512 characters", required=True),
                          query_int("limit", "1 to 50, default 20")]),
    },
    "/api/me/notification-preferences": {
        "get": op("The caller's notification preferences (defaults when never set)", ok(200, ref("Preferences")), tag="notifications"),
        "put": op("Replace the caller's notification preferences; every device gets notification.settings",
                  ok(200, ref("Preferences")), tag="notifications", body=ref("Preferences")),
    },
    "/api/chat/{id}/notification-settings": {
        "get": op("The caller's settings of a chat they are a member of", ok(200, ref("ChatSettings")),
                  params=[path_id()], tag="notifications"),
        "put": op("Set the caller's level, mute and pin of a chat they are a member of", ok(200, ref("ChatSettings")),
                  params=[path_id()], tag="notifications",
                  body=obj({"level": {"type": ["string", "null"], "enum": ["all", "mentions_only", "off", None]},
                            "mutedUntil": {"type": ["string", "null"], "format": "date-time"}, "pinned": B},
                           required=[], additional=False)),
    },
    "/api/me/devices": {
        "get": op("The caller's push devices", ok(200, arr(ref("Device"))), tag="notifications"),
        "post": op("Register a push device (registering it again answers 200 with the same device)",
                   {**ok(201, ref("Device")), **ok(200, ref("Device"), desc="already registered")},
                   tag="notifications",
                   body=obj({"platform": S(enum=["fcm", "apns", "webpush", "webhook"]),
                             "token": S(minLength=1, maxLength=4096),
                             "keys": obj({"p256dh": S(), "auth": S()}, additional=False)},
                            required=["platform", "token"], additional=False)),
        "delete": op("Unregister a push device", ok(204, desc="unregistered"), tag="notifications",
                     body=obj({"platform": S(), "token": S()}, additional=False)),
    },
    "/api/workspace/me": {"get": op("The caller's user record", ok(200, ref("User")), tag="workspace")},
    "/api/workspace/domains": {
        "get": op("E-mail domains whose verified addresses may join without invite (owner/admin)",
                  ok(200, ref("Domains")), tag="workspace"),
        "put": op("Replace the domain list (owner; public mailbox providers refused)",
                  ok(200, ref("Domains")), tag="workspace", body=ref("Domains")),
    },
    "/api/workspace/archive": {
        "get": op("The workspace's message archive setting (any member)", ok(200, ref("ArchiveSetting")),
                  tag="workspace"),
        "put": op("Set or clear the message archive setting (owner)", ok(200, ref("ArchiveSetting")),
                  tag="workspace", body=ref("ArchiveSetting")),
    },
    "/api/workspace/invites": {
        "post": op("Create an invite (owner/admin); the token is shown only here",
                   ok(201, ref("CreatedInvite")), tag="workspace",
                   body=obj({"email": {"type": ["string", "null"]}, "singleUse": B,
                             "expiresInSecs": {"type": ["integer", "null"], "minimum": 60, "maximum": 2592000}},
                            required=[], additional=False)),
        "get": op("Invites of the workspace (owner/admin)", ok(200, arr(ref("Invite"))), tag="workspace"),
    },
    "/api/workspace/invites/{id}": {
        "delete": op("Revoke an invite (owner/admin)", ok(204, desc="revoked"), params=[path_id()], tag="workspace"),
    },
    "/api/workspace/users/{id}/deactivate": {
        "post": op("Deactivate a user: sessions end, sockets close with 4401",
                   ok(204, desc="deactivated"), params=[path_id()], tag="workspace"),
    },
    "/api/workspace/users/{id}/role": {
        "put": op("Set a user's role (owner only)", ok(200, ref("User")), params=[path_id()], tag="workspace",
                  body=obj({"role": S(enum=["admin", "member"])}, additional=False)),
    },
    "/health": {"get": op("Readiness: PostgreSQL and Redis checks",
                          {**ok(200, {"type": "object"}), **ok(503, {"type": "object"}, desc="a dependency is down")},
                          auth=False, tag="operations")},
    "/health/live": {"get": op("Liveness (what HAProxy checks); 503 while draining",
                               {**ok(200, ref("Live")), **ok(503, ref("Live"), desc="draining")},
                               auth=False, tag="operations")},
    "/health/simple": {"get": op("Alias of /health/live",
                                 {**ok(200, ref("Live")), **ok(503, ref("Live"), desc="draining")},
                                 auth=False, tag="operations")},
    "/metrics": {"get": op("Prometheus metrics (not reachable through HAProxy)",
                           ok(200, S(), content_type="text/plain"), auth=False, tag="operations")},
    "/api/openapi.json": {"get": op("This document", ok(200, {"type": "object"}), auth=False, tag="operations")},
    **{path: {"get": op(f"The web client's page ({why}); cached with revalidation (ETag)",
                        ok(200, S(), content_type="text/html"), auth=False, tag="web")}
       for path, why in [("/", "the app"), ("/index.html", "the app"),
                         ("/signup/verify", "opened by the mailed sign-up link"),
                         ("/invite", "opened by an invite link")]},
    **{path: {"get": op(f"The web client's {what}; `?v=<hash>` as the page links it: cached for a year",
                        ok(200, S(), content_type=ctype), auth=False, tag="web",
                        params=[{"name": "v", "in": "query", "required": False, "schema": S()}])}
       for path, what, ctype in [("/app.js", "script", "text/javascript"), ("/app.css", "style sheet", "text/css")]},
    "/ws": {"get": op("WebSocket upgrade (token in `Authorization: Bearer` or `?token=`); frames in docs/protocol.md",
                      ok(101, desc="switching protocols"), auth=False, tag="realtime",
                      params=[{"name": "token", "in": "query", "required": False, "schema": S()}])},
}

doc = {
    "openapi": "3.1.0",
    "info": {"title": "Fechatter realtime REST API", "version": "1",
             "description": "REST routes of the gateway pool. Every error is "
                            "`{\"error\": {\"code\", \"message\", \"retryAfterMs\"?}}`; codes and the "
                            "WebSocket protocol are in docs/protocol.md."},
    "servers": [{"url": "http://127.0.0.1:8080"}, {"url": "https://127.0.0.1:8443"}],
    "security": [{"bearer": []}],
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
                   "schemas": schemas},
    "paths": paths,
}
import sys
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
    pathlib.Path(__file__).resolve().parent.parent / "docs" / "openapi.json"
out.write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out}")
