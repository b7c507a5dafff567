/**
 * TelegramError: what can go wrong talking to the Bot API, as typed values.
 *
 * `TelegramError` is an answer from the API (`ok: false`) with its `error_code`, `description`
 * and `parameters` (`retry_after`, `migrate_to_chat_id`). `TelegramNetworkError` is a call that
 * got no usable answer: a connection error, a timeout, a body that is not JSON (an HTML 502 from
 * a proxy), a body too large to read. Neither ever carries the request URL, which contains the bot token.
 */
import { Data } from "effect"
import type { ResponseParameters } from "@grammyjs/types"

export class TelegramError extends Data.TaggedError("TelegramError")<{
  readonly method: string
  readonly error_code: number
  readonly description: string
  readonly parameters: ResponseParameters | undefined
}> {
  override get message(): string {
    return `Telegram ${this.method} failed: ${this.error_code} ${this.description}`
  }
}

/** `too-large`: the answer was over the client's `maxResponseBytes` and was not read to its end. */
export type NetworkReason = "connection" | "timeout" | "bad-response" | "too-large"

export class TelegramNetworkError extends Data.TaggedError("TelegramNetworkError")<{
  readonly method: string
  readonly reason: NetworkReason
  /** HTTP status when there was one (a 502 with an HTML body). */
  readonly status: number | undefined
  readonly detail: string
}> {
  override get message(): string {
    return `Telegram ${this.method}: ${this.reason}${this.status === undefined ? "" : ` (HTTP ${this.status})`}: ${this.detail}`
  }
}

export type ApiError = TelegramError | TelegramNetworkError

/** 429, 5xx and network trouble are worth another try; other 4xx answers never change. */
export const isRetryable = (e: ApiError): boolean =>
  e._tag === "TelegramNetworkError" || e.error_code === 429 || e.error_code >= 500
