/**
 * Errors of the Discord adapter: each says what happened and what to do about it.
 */
import { Data } from "effect"

/** The gateway closed a shard with a code that must not be retried (4004, 4010-4014). */
export class GatewayFatal extends Data.TaggedError("GatewayFatal")<{
  readonly shard: number
  readonly code: number
  readonly reason: string
}> {
  override get message(): string {
    return `discord shard ${this.shard} stopped: gateway closed with ${this.code} (${this.reason}); ${fatalHint(this.code)}`
  }
}

const fatalHint = (code: number): string => {
  switch (code) {
    case 4004:
      return "the token is wrong: check DISCORD_TOKEN"
    case 4010:
      return "the shard id is out of range for the shard count"
    case 4011:
      return "the bot is in too many guilds for this shard count: use shards \"auto\" or more shards"
    case 4012:
      return "the API version is not supported"
    case 4013:
      return "the intents value is invalid"
    case 4014:
      return "a privileged intent is not enabled for this application in the developer portal"
    default:
      return "not retried"
  }
}

/** No identify left in `session_start_limit`: identifying more would get the token reset. */
export class IdentifyLimitExhausted extends Data.TaggedError("IdentifyLimitExhausted")<{
  readonly shard: number
  readonly resetAfterMs: number
}> {
  override get message(): string {
    return `discord shard ${this.shard}: no session starts left (session_start_limit.remaining = 0); resets in ${Math.ceil(this.resetAfterMs / 1000)} s`
  }
}

/** A gateway payload over Discord's 4096-byte limit; it was not sent (Discord would close 4002). */
export class PayloadTooLarge extends Data.TaggedError("PayloadTooLarge")<{
  readonly shard: number
  readonly op: number
  readonly bytes: number
}> {
  override get message(): string {
    return `discord shard ${this.shard}: op ${this.op} payload of ${this.bytes} bytes exceeds the 4096-byte gateway limit; not sent`
  }
}

/** The shard is not connected (stopped or failed), so a send cannot go out. */
export class ShardUnavailable extends Data.TaggedError("ShardUnavailable")<{
  readonly shard: number
  readonly state: string
}> {
  override get message(): string {
    return `discord shard ${this.shard} is ${this.state}; nothing can be sent through it`
  }
}

/** A REST call failed after its retries. */
export class RestError extends Data.TaggedError("RestError")<{
  readonly method: string
  readonly route: string
  readonly status: number | undefined
  readonly code: number | undefined
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `discord ${this.method} ${this.route} failed${this.status === undefined ? "" : ` with ${this.status}`}${this.code === undefined ? "" : ` (code ${this.code})`}: ${this.reason}`
  }
}
