/**
 * Update: what an adapter hands to core, transport-agnostic.
 *
 * An update has a kind (`message`, `callback`, `open`, `close`, or anything an adapter defines),
 * an id, an ordering key (a chat, a channel, a connection: updates with one key are handled one
 * after another) and the adapter's own payload. Adapters fill `text` and `callbackData` when the
 * update carries them, so routers can filter without knowing the transport.
 */

export interface Update<P = unknown> {
  /** The adapter that produced the update; replies go back through it. */
  readonly adapter: string
  readonly kind: string
  readonly id: string
  /** Ordering key: updates with the same key run in arrival order. */
  readonly key: string
  readonly text?: string | undefined
  readonly callbackData?: string | undefined
  readonly payload: P
  /**
   * Called once when the dispatcher is finished with the update: `true` when its handler ran to an
   * outcome (success, failure, timeout, or no handler matched), `false` when the run was interrupted
   * (the bot stopping). Adapters use it to confirm delivery only after handling (Telegram offsets).
   */
  readonly onDone?: ((handled: boolean) => void) | undefined
}

/** What a handler sends back through `ctx.reply`. Adapters map it to their protocol. */
export interface OutboundMessage {
  readonly text?: string | undefined
  readonly data?: Uint8Array | undefined
  /** Adapter-specific fields (reply markup, embeds, parse mode ...). */
  readonly extra?: Readonly<Record<string, unknown>> | undefined
}

export const make = <P>(fields: {
  readonly adapter: string
  readonly kind: string
  readonly id: string
  readonly key: string
  readonly payload: P
  readonly text?: string | undefined
  readonly callbackData?: string | undefined
  readonly onDone?: ((handled: boolean) => void) | undefined
}): Update<P> => fields

export const toOutbound = (message: string | OutboundMessage): OutboundMessage =>
  typeof message === "string" ? { text: message } : message

/** A parsed bot command: `/start@my_bot some args` gives `{ name: "start", bot: "my_bot", args: "some args" }`. */
export interface Command {
  readonly name: string
  readonly bot: string | undefined
  readonly args: string
}

const COMMAND = /^\/([A-Za-z0-9_]{1,64})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+([\s\S]*))?$/

/**
 * Parses a command from a message text, or `undefined` when the text is not a command.
 *
 * ```ts import.meta.vitest
 * import { expect } from "vitest"
 * import * as Update from "./Update.ts"
 * expect(Update.parseCommand("/start@my_bot hello world")).toEqual({ name: "start", bot: "my_bot", args: "hello world" })
 * expect(Update.parseCommand("hello")).toBeUndefined()
 * ```
 */
export const parseCommand = (text: string | undefined): Command | undefined => {
  if (text === undefined || text.length === 0 || text[0] !== "/") return undefined
  const m = COMMAND.exec(text.trimEnd())
  if (m === null) return undefined
  return { name: m[1]!.toLowerCase(), bot: m[2], args: (m[3] ?? "").trim() }
}
