/**
 * Client: the Telegram Bot API over undici, typed with `@grammyjs/types`.
 *
 * One keep-alive connection pool per client, closed with the scope that made it. Each call has a
 * deadline (per method; a long poll gets its poll timeout plus a margin, so the HTTP timeout never
 * cuts a healthy long poll short) and is interruptible: interrupting the fiber aborts the request.
 * Failures are retried by class: 429 waits `retry_after` (never less), 5xx / network / non-JSON
 * bodies back off exponentially with jitter for a bounded number of attempts, other 4xx answers
 * (400, 401, 403, 409) are final. `retry_after` comes from the network, so it is read defensively
 * (a number or a numeric string, else 1 s) and no wait it causes is longer than `maxRetryAfter`:
 * a call that would have to wait longer fails, a loop that retries itself (the poller) waits the
 * cap and asks again. A response body over `maxResponseBytes` is a `too-large` network error. The token is `Redacted`: it is only unwrapped to build the URL,
 * and no error, log line or span carries that URL.
 */
import type { ApiMethods, Opts } from "@grammyjs/types"
import { Duration, Effect, Redacted, Scope } from "effect"
import { openAsBlob } from "node:fs"
import { basename } from "node:path"
import { Agent, FormData, request } from "undici"
import * as Body from "../shared/Body.ts"
import { TelegramError, TelegramNetworkError, type ApiError } from "./TelegramError.ts"

/** A file to upload: bytes, a path on disk, or a stream (read into memory up to `maxUploadBytes`). */
export class InputFile {
  readonly _tag = "InputFile"
  readonly source: Uint8Array | string | AsyncIterable<Uint8Array>
  readonly filename: string | undefined
  constructor(source: Uint8Array | string | AsyncIterable<Uint8Array>, filename?: string) {
    this.source = source
    this.filename = filename
  }
}

export type Methods = ApiMethods<InputFile>
export type MethodName = keyof Methods
export type Params<M extends MethodName> = Opts<InputFile>[M]
export type Result<M extends MethodName> = ReturnType<Methods[M]>

export interface RetryOptions {
  /** Attempts for 5xx / network / non-JSON failures, the first included (default 5). */
  readonly maxAttempts?: number | undefined
  /** First backoff (default 200 ms), doubled each attempt, up to `maxDelay` (default 5 s). */
  readonly baseDelay?: Duration.Input | undefined
  readonly maxDelay?: Duration.Input | undefined
  /**
   * A 429 asking to wait longer than this fails instead (default 60 s); `backoff`, which loops that
   * retry themselves use, never answers more than this either.
   */
  readonly maxRetryAfter?: Duration.Input | undefined
  /** How many 429s one call may absorb (default 5). */
  readonly max429?: number | undefined
}

export interface ClientOptions {
  readonly token: Redacted.Redacted<string>
  /** Default `https://api.telegram.org`; a local Bot API server or the emulator otherwise. */
  readonly apiRoot?: string | undefined
  /** Deadline of one HTTP call (default 10 s); uploads get `uploadTimeout` (default 60 s). */
  readonly timeout?: Duration.Input | undefined
  readonly uploadTimeout?: Duration.Input | undefined
  /** Added to a long poll's `timeout` to get its HTTP deadline (default 10 s). */
  readonly longPollMargin?: Duration.Input | undefined
  readonly retry?: RetryOptions | undefined
  /** Connections per origin (default 32): sends run in parallel beside the one long poll. */
  readonly connections?: number | undefined
  readonly maxUploadBytes?: number | undefined
  /**
   * Largest response body read (default 64 MiB). Bot API answers are JSON of at most 100 updates or
   * one object; files are not downloaded through the client. A larger body is cut off and fails
   * the call with a `too-large` `TelegramNetworkError` instead of being buffered.
   */
  readonly maxResponseBytes?: number | undefined
}

export interface CallOptions {
  readonly timeout?: Duration.Input | undefined
  /** `false`: one attempt, no retry (the poller supervises its own retries). */
  readonly retry?: boolean | undefined
}

export interface Client {
  readonly call: <M extends MethodName>(method: M, params?: Params<M>, options?: CallOptions) => Effect.Effect<Result<M>, ApiError>
  /**
   * How long to wait before trying again: what a 429 asked (never more than `maxRetryAfter`), or
   * a backoff step; used by loops that retry themselves.
   */
  readonly backoff: (error: ApiError, attempt: number) => Duration.Duration
}

const UPLOAD_METHODS = new Set(["sendPhoto", "sendDocument", "sendAudio", "sendVideo", "sendVoice", "sendAnimation", "sendVideoNote", "sendSticker", "sendMediaGroup", "setWebhook"])

const ms = (d: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(d))

/**
 * The wait a 429 asks for, in ms, or `undefined` when its `retry_after` is unusable. The value
 * comes off the network: a numeric string is accepted, `1e400` parses as Infinity (kept: it asks
 * for longer than any cap), zero, negative, NaN and anything else are refused.
 */
export const retryAfterMs = (error: ApiError): number | undefined => {
  if (error._tag !== "TelegramError") return undefined
  const raw: unknown = error.parameters?.retry_after
  const seconds = typeof raw === "number"
    ? raw
    : typeof raw === "string" && /^\s*\d+(\.\d+)?\s*$/.test(raw)
    ? Number(raw)
    : Number.NaN
  // 0 is refused too: a server answering "retry after 0 s" again and again would have the poll
  // loop and the retries spin without a pause; the caller's default wait applies instead
  return seconds > 0 ? seconds * 1000 : undefined
}

/** Makes a client whose connection pool closes with the scope. */
export const make = (options: ClientOptions): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const apiRoot = (options.apiRoot ?? "https://api.telegram.org").replace(/\/+$/, "")
    const timeoutMs = ms(options.timeout ?? "10 seconds")
    const uploadTimeoutMs = ms(options.uploadTimeout ?? "60 seconds")
    const marginMs = ms(options.longPollMargin ?? "10 seconds")
    const maxAttempts = Math.max(1, options.retry?.maxAttempts ?? 5)
    const baseMs = ms(options.retry?.baseDelay ?? "200 millis")
    const maxDelayMs = ms(options.retry?.maxDelay ?? "5 seconds")
    const maxRetryAfterMs = ms(options.retry?.maxRetryAfter ?? "60 seconds")
    const max429 = options.retry?.max429 ?? 5
    const maxUpload = options.maxUploadBytes ?? 50 * 1024 * 1024
    const maxResponse = options.maxResponseBytes ?? 64 * 1024 * 1024
    // Keep-alive on purpose: the Bot API is one origin, and a TLS handshake per call costs more
    // than the call. Idle sockets are dropped after 30 s (below common proxy idle limits), and a
    // long poll's socket is never idle. No pipelining: a slow long poll must not hold up sends.
    const agent = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Agent({
          keepAliveTimeout: 30_000,
          keepAliveMaxTimeout: 60_000,
          connections: options.connections ?? 32,
          pipelining: 1,
          connect: { timeout: 10_000 }
        })
      ),
      (a) => Effect.promise(() => a.destroy().catch(() => undefined))
    )
    const tokenText = Redacted.value(options.token)
    const scrub = (text: string) => (tokenText.length > 0 ? text.split(tokenText).join("<redacted>") : text)

    const toBody = (params: Record<string, unknown> | undefined) =>
      Effect.gen(function*() {
        const entries = Object.entries(params ?? {}).filter(([, v]) => v !== undefined)
        if (!entries.some(([, v]) => v instanceof InputFile)) {
          return { body: JSON.stringify(Object.fromEntries(entries)), headers: { "content-type": "application/json" } }
        }
        const form = new FormData()
        for (const [k, v] of entries) {
          if (v instanceof InputFile) {
            const blob = yield* fileBlob(v, maxUpload)
            form.append(k, blob, v.filename ?? (typeof v.source === "string" ? basename(v.source) : k))
          } else {
            form.append(k, typeof v === "string" ? v : JSON.stringify(v))
          }
        }
        return { body: form, headers: {} as Record<string, string> }
      })

    const once = (method: string, params: Record<string, unknown> | undefined, deadlineMs: number): Effect.Effect<unknown, ApiError> =>
      Effect.gen(function*() {
        const { body, headers } = yield* toBody(params).pipe(
          Effect.mapError((e) => new TelegramNetworkError({ method, reason: "connection", status: undefined, detail: scrub(String(e)) }))
        )
        const response = yield* Effect.tryPromise({
          try: async (signal) => {
            const r = await request(`${apiRoot}/bot${tokenText}/${method}`, {
              method: "POST",
              headers,
              body,
              dispatcher: agent,
              signal,
              headersTimeout: deadlineMs,
              bodyTimeout: deadlineMs
            })
            return { status: r.statusCode, text: await Body.readText(r, maxResponse) }
          },
          catch: (e) => {
            if (e instanceof Body.BodyTooLarge) {
              return new TelegramNetworkError({ method, reason: "too-large", status: undefined, detail: e.message })
            }
            const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : ""
            const timeout = code.includes("TIMEOUT")
            return new TelegramNetworkError({
              method,
              reason: timeout ? "timeout" : "connection",
              status: undefined,
              detail: scrub(code !== "" ? code : e instanceof Error ? e.message : String(e))
            })
          }
        }).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(deadlineMs),
            orElse: () => Effect.fail(new TelegramNetworkError({ method, reason: "timeout", status: undefined, detail: `no answer within ${deadlineMs} ms` }))
          })
        )
        let parsed: unknown
        try {
          parsed = JSON.parse(response.text)
        } catch {
          return yield* Effect.fail(
            new TelegramNetworkError({ method, reason: "bad-response", status: response.status, detail: "the body is not JSON" })
          )
        }
        if (typeof parsed !== "object" || parsed === null || !("ok" in parsed)) {
          return yield* Effect.fail(new TelegramNetworkError({ method, reason: "bad-response", status: response.status, detail: "not a Bot API answer" }))
        }
        const answer = parsed as { ok: boolean; result?: unknown; error_code?: unknown; description?: unknown; parameters?: unknown }
        if (answer.ok === true) return answer.result
        return yield* Effect.fail(
          new TelegramError({
            method,
            error_code: typeof answer.error_code === "number" ? answer.error_code : response.status,
            description: typeof answer.description === "string" ? scrub(answer.description) : "no description",
            parameters: typeof answer.parameters === "object" && answer.parameters !== null ? answer.parameters as TelegramError["parameters"] : undefined
          })
        )
      })

    /** What a 429 asks for (1 s when it does not say usably), before any cap. */
    const askedMs = (error: ApiError) => retryAfterMs(error) ?? 1000

    const backoff = (error: ApiError, attempt: number): Duration.Duration => {
      if (error._tag === "TelegramError" && error.error_code === 429) {
        // Never less than asked (an early retry only extends the ban), but never more than the cap:
        // an absurd retry_after would otherwise park the caller for good.
        return Duration.millis(Math.min(askedMs(error), maxRetryAfterMs))
      }
      const ceiling = Math.min(maxDelayMs, baseMs * 2 ** Math.max(0, attempt - 1))
      return Duration.millis(ceiling / 2 + Math.random() * (ceiling / 2))
    }

    const call = <M extends MethodName>(method: M, params?: Params<M>, callOptions?: CallOptions): Effect.Effect<Result<M>, ApiError> => {
      const p = params as Record<string, unknown> | undefined
      const deadline = callOptions?.timeout !== undefined
        ? ms(callOptions.timeout)
        : method === "getUpdates"
        ? (typeof p?.timeout === "number" ? p.timeout * 1000 : 0) + marginMs
        : UPLOAD_METHODS.has(method)
        ? uploadTimeoutMs
        : timeoutMs
      const retry = callOptions?.retry ?? true
      return Effect.gen(function*() {
        let attempt = 0
        let throttled = 0
        while (true) {
          attempt++
          const result = yield* Effect.result(once(method, p, deadline))
          if (result._tag === "Success") return result.success as Result<M>
          const error = result.failure
          if (!retry) return yield* Effect.fail(error)
          if (error._tag === "TelegramError" && error.error_code === 429) {
            if (++throttled > max429 || askedMs(error) > maxRetryAfterMs) return yield* Effect.fail(error)
            const wait = backoff(error, attempt)
            attempt--
            yield* Effect.logDebug(`telegram ${method}: 429, waiting ${Duration.format(wait)}`)
            yield* Effect.sleep(wait)
            continue
          }
          const transient = error._tag === "TelegramNetworkError" || error.error_code >= 500
          if (!transient || attempt >= maxAttempts) return yield* Effect.fail(error)
          const wait = backoff(error, attempt)
          yield* Effect.logDebug(`telegram ${method}: ${error.message}; retry ${attempt} in ${Duration.format(wait)}`)
          yield* Effect.sleep(wait)
        }
      })
    }

    return { call, backoff }
  })

const fileBlob = (file: InputFile, max: number) =>
  Effect.tryPromise({
    try: async () => {
      const src = file.source
      if (typeof src === "string") return await openAsBlob(src)
      if (src instanceof Uint8Array) return new Blob([src as Uint8Array<ArrayBuffer>])
      const chunks: Array<Uint8Array> = []
      let size = 0
      for await (const chunk of src) {
        size += chunk.length
        if (size > max) throw new Error(`upload larger than ${max} bytes`)
        chunks.push(chunk)
      }
      return new Blob(chunks as Array<Uint8Array<ArrayBuffer>>)
    },
    catch: (e) => e
  })
