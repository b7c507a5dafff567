/**
 * @fiberbot/adapters/discord: the Discord gateway (shards over `ws`), REST (undici) and HTTP
 * interactions as a fiberbot adapter. See the "Discord" section of the package README.
 */
export * as Discord from "./DiscordAdapter.ts"
export * as DiscordRest from "./Rest.ts"
export * as DiscordShard from "./Shard.ts"
export * as IdentifyThrottler from "./IdentifyThrottler.ts"
export * as Interactions from "./Interactions.ts"
export * as SendLimiter from "./SendLimiter.ts"
export * as SessionStore from "./SessionStore.ts"
export * as ZlibStream from "./ZlibStream.ts"
export * from "./Errors.ts"
export type { DiscordAdapter, DiscordPayload, Config as DiscordConfig } from "./DiscordAdapter.ts"
