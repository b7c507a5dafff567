/**
 * @fiberbot/adapters/websocket: raw WebSocket server and client adapters on `ws`.
 *
 * `Server.make({ port: 0 })` listens (or attaches to an `http.Server`), `Client.make({ url })`
 * connects out and reconnects with backoff. The server keeps no fiber per idle connection: one
 * shared reader hands frames to the bot, a connection has a writer only while frames are queued and
 * one sweep runs heartbeats (see Server.ts for why); the client runs read, write and heartbeat
 * fibers in one scope per connection attempt. Bounded queues both ways, close codes for bad input.
 */
export * as Codec from "./Codec.ts"
export * as Connection from "./Connection.ts"
export * as Server from "./Server.ts"
export * as Client from "./Client.ts"
