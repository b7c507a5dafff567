/**
 * Decode: Telegram updates into core `Update`s, leniently.
 *
 * `kind` is the Telegram field name (`message`, `edited_message`, `callback_query`,
 * `my_chat_member`, ...), including kinds newer than this code: anything with a numeric
 * `update_id` is passed through. The ordering `key` is the chat id when the update has a chat,
 * else the user's id, so one conversation is handled in order. `text` is a message's text or
 * caption; `callbackData` a callback query's data. Only a body without `update_id` is refused.
 */
import type { Update as TgUpdate } from "@grammyjs/types"
import { Update } from "@fiberbot/core"

export type TelegramUpdate = Update.Update<TgUpdate>

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

const idOf = (v: unknown): string | undefined => {
  if (!isObject(v)) return undefined
  const id = v.id
  return typeof id === "number" || typeof id === "string" ? String(id) : undefined
}

/** The chat an update is about, found the way each kind carries it. */
export const chatIdOf = (body: Record<string, unknown>): string | undefined => {
  if (isObject(body.chat)) return idOf(body.chat)
  if (isObject(body.message) && isObject(body.message.chat)) return idOf(body.message.chat)
  return undefined
}

/** The user behind an update, for kinds with no chat (inline queries, polls answers ...). */
export const userIdOf = (body: Record<string, unknown>): string | undefined =>
  idOf(body.from) ?? idOf(body.user) ?? idOf(body.sender_user) ?? idOf(body.voter_chat)

/** The decoded update, or `undefined` when `raw` is not an update at all (no numeric `update_id`). */
export const decode = (adapter: string, raw: unknown, onDone?: (handled: boolean) => void): TelegramUpdate | undefined => {
  if (!isObject(raw) || typeof raw.update_id !== "number" || !Number.isSafeInteger(raw.update_id)) return undefined
  let kind = "unknown"
  for (const k in raw) {
    if (k !== "update_id") {
      kind = k
      break
    }
  }
  const body = isObject(raw[kind]) ? (raw[kind] as Record<string, unknown>) : {}
  const key = chatIdOf(body) ?? userIdOf(body) ?? `update:${kind}`
  const text = typeof body.text === "string" ? body.text : typeof body.caption === "string" ? body.caption : undefined
  const callbackData = kind === "callback_query" && typeof body.data === "string" ? body.data : undefined
  // Update.of, not a literal: a batch of up to 100 waits in the intake, exactly what makes V8
  // pretenure a literal's site (and then every update drags its payload into the old generation)
  return Update.of(adapter, kind, String(raw.update_id), key, raw as unknown as TgUpdate, text, callbackData, onDone)
}
