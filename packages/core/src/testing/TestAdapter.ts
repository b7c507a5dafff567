/**
 * TestAdapter: an adapter with no network, for testing bots.
 *
 * Feed updates in with `send` (or `message` for a text message; `trySend` offers without waiting,
 * as an adapter receiving in callbacks does), read what handlers replied with
 * `replies` or wait for the next one with `nextReply`. It reports ready at once and closes cleanly,
 * so a test of a bot needs nothing but this and the leak assertion.
 */
import { Effect, Queue } from "effect"
import * as Adapter from "../Adapter.ts"
import type { OfferResult } from "../Intake.ts"
import * as Update from "../Update.ts"

export interface Reply {
  readonly update: Update.Update
  readonly message: Update.OutboundMessage
}

export interface TestAdapter {
  readonly adapter: Adapter.Adapter
  /** Offers an update to the bot; `"closed"` when the bot is not running. */
  readonly send: (update: Partial<Update.Update> & { readonly key: string }) => Effect.Effect<OfferResult>
  /**
   * Offers without waiting (`AdapterContext.tryOffer`): `undefined` when a backpressured intake is
   * full; a quick handler of the update has already run when it returns.
   */
  readonly trySend: (update: Partial<Update.Update> & { readonly key: string }) => OfferResult | undefined
  /** A text message from `key` (a chat, a user). */
  readonly message: (key: string, text: string) => Effect.Effect<OfferResult>
  readonly replies: () => ReadonlyArray<Reply>
  /** Waits for the next reply not taken yet. */
  readonly nextReply: Effect.Effect<Reply>
}

export const make = (options: { readonly name?: string; readonly maxReplies?: number } = {}): Effect.Effect<TestAdapter> =>
  Effect.gen(function*() {
    const name = options.name ?? "test"
    const capacity = options.maxReplies ?? 100_000
    const inbox = yield* Queue.sliding<Reply>(capacity)
    const all: Array<Reply> = []
    let offer: ((u: Update.Update) => Effect.Effect<OfferResult>) | undefined
    let tryOffer: ((u: Update.Update) => OfferResult | undefined) | undefined
    let seq = 0

    const adapter = Adapter.make({
      name,
      start: (ctx) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            offer = ctx.offer
            tryOffer = ctx.tryOffer
          }),
          () =>
            Effect.sync(() => {
              offer = undefined
              tryOffer = undefined
            })
        ),
      reply: (update, message) =>
        Effect.sync(() => {
          const reply = { update, message }
          all.push(reply)
          // keep the last `capacity`; trim in halves so a long test does not pay O(n) per reply
          if (all.length >= capacity * 2) all.splice(0, all.length - capacity)
          Queue.offerUnsafe(inbox, reply)
        })
    })

    const toUpdate = (partial: Partial<Update.Update> & { readonly key: string }) =>
      Update.make({
        adapter: name,
        kind: partial.kind ?? "message",
        id: partial.id ?? String(++seq),
        key: partial.key,
        payload: partial.payload ?? {},
        text: partial.text,
        callbackData: partial.callbackData
      })

    const send = (partial: Partial<Update.Update> & { readonly key: string }) =>
      Effect.suspend(() => (offer === undefined ? Effect.succeed("closed" as const) : offer(toUpdate(partial))))

    const trySend = (partial: Partial<Update.Update> & { readonly key: string }) =>
      tryOffer === undefined ? "closed" as const : tryOffer(toUpdate(partial))

    return {
      adapter,
      send,
      trySend,
      message: (key, text) => send({ key, text }),
      replies: () => all.slice(-capacity),
      nextReply: Queue.take(inbox)
    }
  })
