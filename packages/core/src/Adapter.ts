/**
 * Adapter: the contract between a transport and core.
 *
 * An adapter starts inside its own scope in the bot (`start` returns once it is ready to receive),
 * runs its loops as named tasks through `ctx.fork`, turns what it receives into `Update`s and
 * hands them to `ctx.offer`, and sends `ctx.reply(...)` of handlers back out through `reply`.
 * When the bot stops, `offer` answers `"closed"` first; the adapter's scope is closed last, after
 * handlers drained, so replies of draining handlers still go out.
 */
import { Data, Effect, Fiber, Scope } from "effect"
import type { OfferResult } from "./Intake.ts"
import type { OutboundMessage, Update } from "./Update.ts"

export interface AdapterContext {
  readonly bot: string
  /** Hands an update to the bot's intake; the answer says whether it was taken. */
  readonly offer: (update: Update) => Effect.Effect<OfferResult>
  /**
   * The same without waiting: the answer, or `undefined` when the intake is full under
   * `backpressure` and the update must go through `offer`. For adapters that receive in callbacks:
   * with room, the update is handed over (and a quick handler may even run) before this returns.
   */
  readonly tryOffer: (update: Update) => OfferResult | undefined
  /**
   * Whether the bot's intake breaker is open (tripped by the watchdog, failures, an operator or an
   * alert): an adapter refuses new work its own way while it is (WebSocket upgrades get 503).
   */
  readonly paused: () => boolean
  /** Forks a named task (`<adapter>/<what>`) into the adapter's scope. */
  readonly fork: <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<Fiber.Fiber<A, E>, never, R>
}

export interface Adapter {
  readonly name: string
  readonly start: (ctx: AdapterContext) => Effect.Effect<void, AdapterError, Scope.Scope>
  readonly reply: (update: Update, message: OutboundMessage) => Effect.Effect<void, ReplyError>
  /**
   * The adapter's own figures (connections, poll liveness, shard states ...), shown in the bot's
   * status and, as they stand once the adapter closed, in its stop report. Plain JSON values.
   */
  readonly status?: (() => Readonly<Record<string, unknown>>) | undefined
}

/** An adapter could not start (bad credentials, unreachable endpoint, handshake timeout ...). */
export class AdapterError extends Data.TaggedError("AdapterError")<{
  readonly adapter: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `adapter ${this.adapter}: ${this.reason}`
  }
}

/** A reply could not be delivered. */
export class ReplyError extends Data.TaggedError("ReplyError")<{
  readonly adapter: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `reply through ${this.adapter} failed: ${this.reason}`
  }
}

export const make = (adapter: Adapter): Adapter => adapter
