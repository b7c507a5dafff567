/**
 * @fiberbot/adapters/websocket: raw WebSocket server and client adapters on `ws`.
 *
 * `Server.make({ port: 0 })` listens (or attaches to an `http.Server`), `Client.make({ url })`
 * connects out and reconnects with backoff. Both serve each connection with a read, a write and a
 * heartbeat fiber in one scope, bounded queues both ways, and close codes for bad input.
 */
export * as Codec from "./Codec.ts"
export * as Connection from "./Connection.ts"
export * as Server from "./Server.ts"
export * as Client from "./Client.ts"
