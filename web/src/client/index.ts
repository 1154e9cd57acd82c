// The Fechatter client library: REST (Api), the realtime connection
// (Realtime: requests.ts and sync.ts are its parts) and its message cache.
// The app in src/app uses only this.
export * from "./types.js";
export * from "./api.js";
export * from "./backoff.js";
export * from "./cache.js";
export * from "./realtime.js";
