/**
 * Emulator: a loopback Telegram Bot API server for offline tests and benchmarks.
 *
 * It listens on 127.0.0.1 (an OS-assigned port) inside the scope that made it and speaks the Bot
 * API over HTTP with its real semantics: one update queue per bot with `offset`/`limit`/`timeout`
 * long polling where a call with `offset` confirms every earlier update, 409 for a second
 * concurrent `getUpdates` and while a webhook is set, webhook delivery with the secret header and
 * retries, multipart uploads, and Bot API-shaped results and errors.
 *
 * The user side plays the people talking to the bot (`sendMessage`, `sendCommand`,
 * `sendCallback`, `pushUpdate`) and reads what the bot did (`sent`, `waitForSent`, `calls`).
 * Faults are injected per method (`inject`): 429 with `retry_after`, 5xx with an HTML body, a
 * dropped connection, a response that never comes, a malformed JSON body, or any answer at all
 * (`Raw`: a status and body, to script what the real API should never send). Every call is
 * recorded.
 */
import type { Message, Update as TgUpdate, User } from "@grammyjs/types"
import { Data, Deferred, Duration, Effect, Exit, FiberSet, Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

export type Fault =
  | { readonly _tag: "TooManyRequests"; readonly retryAfter: number }
  | { readonly _tag: "ServerError"; readonly status?: number | undefined }
  | { readonly _tag: "Drop" }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "MalformedJson" }
  | {
    readonly _tag: "Raw"
    /** Default 200. */
    readonly status?: number | undefined
    readonly body: string
    /** Default `application/json`. */
    readonly contentType?: string | undefined
    /** Send without `content-length` (chunked), so the client cannot tell the size up front. */
    readonly chunked?: boolean | undefined
  }

export interface RecordedCall {
  readonly method: string
  /** Parameters as received; uploaded files appear as `{ file: name, size }`. */
  readonly params: Readonly<Record<string, unknown>>
  readonly at: number
  /** HTTP status answered, or the fault that was applied. */
  readonly outcome: number | Fault["_tag"]
}

/** A message the bot sent (or edited, or deleted), as the chat sees it. */
export interface SentMessage {
  readonly method: string
  readonly chatId: number
  readonly messageId: number
  readonly text: string | undefined
  /** Epoch millis when the emulator accepted it. */
  readonly at: number
  readonly params: Readonly<Record<string, unknown>>
}

export interface WebhookState {
  readonly url: string
  readonly secretToken: string | undefined
  readonly maxConnections: number
  readonly allowedUpdates: ReadonlyArray<string> | undefined
  lastErrorDate: number | undefined
  lastErrorMessage: string | undefined
  delivered: number
}

export interface Options {
  /** The bot token the emulator accepts (default `123456:TEST-emulator-token`). */
  readonly token?: string | undefined
  readonly username?: string | undefined
  /** Backoff between webhook delivery retries (default 50 ms doubling up to 1 s). */
  readonly webhookRetryBase?: Duration.Input | undefined
  readonly webhookRetryMax?: Duration.Input | undefined
  /** Per-request timeout of webhook deliveries (default 10 s). */
  readonly webhookTimeout?: Duration.Input | undefined
  /** Largest request body accepted (default 20 MB). */
  readonly maxBodyBytes?: number | undefined
}

export class EmulatorTimeout extends Data.TaggedError("EmulatorTimeout")<{ readonly waitingFor: string; readonly seen: number }> {
  override get message(): string {
    return `emulator: timed out waiting for ${this.waitingFor} (saw ${this.seen})`
  }
}

export interface Emulator {
  /** The API root to give a client: `http://127.0.0.1:<port>`. */
  readonly apiRoot: string
  readonly port: number
  readonly token: string
  readonly me: User
  /** A user writes `text` into a chat (private by default; negative ids are groups). */
  readonly sendMessage: (options: {
    readonly chatId?: number | undefined
    readonly text: string
    readonly from?: Partial<User> | undefined
  }) => TgUpdate
  /** A user sends `/command args` (with a `bot_command` entity). */
  readonly sendCommand: (chatId: number, command: string, args?: string) => TgUpdate
  /** A user presses an inline button with `data` under message `messageId` of the chat. */
  readonly sendCallback: (options: { readonly chatId: number; readonly data: string; readonly messageId?: number | undefined }) => TgUpdate
  /** Queues any update (known kind or not); `update_id` is assigned. */
  readonly pushUpdate: (fields: Readonly<Record<string, unknown>>) => TgUpdate
  /** Messages the bot sent, in order (optionally of one chat). */
  readonly sent: (chatId?: number) => ReadonlyArray<SentMessage>
  /** Waits until the bot sent at least `count` messages (into `chatId`, if given). */
  readonly waitForSent: (
    count: number,
    options?: { readonly chatId?: number | undefined; readonly timeout?: Duration.Input | undefined }
  ) => Effect.Effect<ReadonlyArray<SentMessage>, EmulatorTimeout>
  readonly calls: (method?: string) => ReadonlyArray<RecordedCall>
  /** The next `times` calls of `method` (or `"*"`: any method) get `fault`. */
  readonly inject: (method: string, fault: Fault, times?: number) => void
  /** Simulates another instance polling: every getUpdates gets 409 while on. */
  readonly setConflict: (on: boolean) => void
  /** Updates queued and not confirmed yet. */
  readonly pending: () => number
  /** A getUpdates long poll is waiting right now. */
  readonly polling: () => boolean
  /** The highest update_id confirmed by an `offset`, or 0. */
  readonly confirmed: () => number
  readonly webhook: () => WebhookState | undefined
  readonly callbackAnswers: () => ReadonlyArray<Readonly<Record<string, unknown>>>
  readonly commands: () => ReadonlyArray<unknown>
}

const HTML_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
const KIND_KEYS = new Set(["update_id"])

class ApiFailure {
  readonly status: number
  readonly description: string
  readonly parameters: Record<string, unknown> | undefined
  constructor(status: number, description: string, parameters?: Record<string, unknown>) {
    this.status = status
    this.description = description
    this.parameters = parameters
  }
}
const bad = (description: string) => new ApiFailure(400, `Bad Request: ${description}`)
const CONFLICT_POLL = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
const CONFLICT_WEBHOOK = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"

const kindOf = (u: Readonly<Record<string, unknown>>) => Object.keys(u).find((k) => !KIND_KEYS.has(k)) ?? "unknown"

const readBody = (req: Http.IncomingMessage, max: number) =>
  Effect.callback<Buffer | "too-large">((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    let done = false
    const onData = (c: Buffer) => {
      size += c.length
      if (size > max) {
        done = true
        req.off("data", onData)
        resume(Effect.succeed("too-large"))
        return
      }
      chunks.push(c)
    }
    req.on("data", onData)
    req.once("end", () => {
      if (!done) resume(Effect.succeed(Buffer.concat(chunks)))
    })
    req.once("error", () => {
      if (!done) resume(Effect.succeed(Buffer.concat(chunks)))
    })
  })

const parseParams = (req: Http.IncomingMessage, body: Buffer): Effect.Effect<Record<string, unknown>, ApiFailure> =>
  Effect.gen(function*() {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    const params: Record<string, unknown> = {}
    for (const [k, v] of url.searchParams) params[k] = coerce(v)
    const type = (req.headers["content-type"] ?? "").toLowerCase()
    if (body.length === 0) return params
    if (type.startsWith("application/json")) {
      const parsed = yield* Effect.try({ try: () => JSON.parse(body.toString("utf8")) as unknown, catch: () => bad("can't parse JSON request body") })
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return yield* Effect.fail(bad("JSON object expected"))
      return { ...params, ...(parsed as Record<string, unknown>) }
    }
    if (type.startsWith("application/x-www-form-urlencoded")) {
      for (const [k, v] of new URLSearchParams(body.toString("utf8"))) params[k] = coerce(v)
      return params
    }
    if (type.startsWith("multipart/form-data")) {
      const form = yield* Effect.tryPromise({
        try: () => new Request("http://127.0.0.1/", { method: "POST", headers: { "content-type": type }, body: new Uint8Array(body) }).formData(),
        catch: () => bad("can't parse multipart request body")
      })
      for (const [k, v] of form) {
        if (typeof v === "string") params[k] = coerce(v)
        else params[k] = { file: v.name, size: v.size, type: v.type }
      }
      return params
    }
    return params
  })

// Form fields carry JSON-serialized objects and numbers as text, as in the real API.
const coerce = (v: string): unknown => {
  if (/^-?\d+$/.test(v)) return Number(v)
  if (v === "true") return true
  if (v === "false") return false
  if (v.startsWith("{") || v.startsWith("[")) {
    try {
      return JSON.parse(v) as unknown
    } catch {
      return v
    }
  }
  return v
}

const num = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : undefined

/** Starts an emulator that lives as long as the current scope. */
export const make = (options: Options = {}): Effect.Effect<Emulator, never, Scope.Scope> =>
  Effect.gen(function*() {
    const token = options.token ?? "123456:TEST-emulator-token"
    const botId = Number(token.split(":")[0]) || 123456
    const me: User = { id: botId, is_bot: true, first_name: "Emulated", username: options.username ?? "emulated_bot" }
    const maxBody = options.maxBodyBytes ?? 20 * 1024 * 1024
    const retryBase = Duration.toMillis(Duration.fromInputUnsafe(options.webhookRetryBase ?? "50 millis"))
    const retryMax = Duration.toMillis(Duration.fromInputUnsafe(options.webhookRetryMax ?? "1 second"))
    const webhookTimeout = Duration.fromInputUnsafe(options.webhookTimeout ?? "10 seconds")

    let queue: Array<TgUpdate> = []
    let nextUpdateId = 1
    let confirmedId = 0
    let nextMessageId = 1
    let conflict = false
    let activePoll = false
    let allowed: ReadonlyArray<string> | undefined
    let webhook: WebhookState | undefined
    let arrival = Deferred.makeUnsafe<void>()
    const sentLog: Array<SentMessage> = []
    const sentWaiters = new Set<Deferred.Deferred<void>>()
    const callLog: Array<RecordedCall> = []
    const faults: Array<{ method: string; fault: Fault; times: number }> = []
    const issuedCallbacks = new Set<string>()
    const answers: Array<Record<string, unknown>> = []
    let myCommands: ReadonlyArray<unknown> = []
    const messages = new Map<string, { chatId: number; messageId: number; text: string | undefined; deleted: boolean }>()

    const signalArrival = () => {
      const d = arrival
      arrival = Deferred.makeUnsafe<void>()
      Deferred.doneUnsafe(d, Exit.void)
    }
    const signalSent = () => {
      // Copy first: a woken waiter may register again before this loop ends.
      const waiters = [...sentWaiters]
      sentWaiters.clear()
      for (const w of waiters) Deferred.doneUnsafe(w, Exit.void)
    }

    const pushUpdate = (fields: Readonly<Record<string, unknown>>): TgUpdate => {
      const update = { ...fields, update_id: nextUpdateId++ } as unknown as TgUpdate
      queue.push(update)
      signalArrival()
      return update
    }
    const chatOf = (chatId: number) =>
      chatId < 0 ? { id: chatId, type: "supergroup" as const, title: `group ${chatId}` } : { id: chatId, type: "private" as const, first_name: `user${chatId}` }
    const userOf = (id: number, from?: Partial<User>): User => ({ id, is_bot: false, first_name: `user${id}`, ...from })
    const sendMessage: Emulator["sendMessage"] = ({ chatId = 1000, text, from }) => {
      const userId = from?.id ?? (chatId > 0 ? chatId : 1000)
      const command = /^\/[A-Za-z0-9_@]+/.exec(text)
      return pushUpdate({
        message: {
          message_id: nextMessageId++,
          date: Math.floor(Date.now() / 1000),
          chat: chatOf(chatId),
          from: userOf(userId, from),
          text,
          ...(command === null ? {} : { entities: [{ type: "bot_command", offset: 0, length: command[0].length }] })
        }
      })
    }
    const sendCallback: Emulator["sendCallback"] = ({ chatId, data, messageId }) => {
      const id = `cb${nextUpdateId}-${Math.floor(Math.random() * 1e9)}`
      issuedCallbacks.add(id)
      const target = messageId ?? [...sentLog].reverse().find((m) => m.chatId === chatId)?.messageId ?? 0
      const known = messages.get(`${chatId}:${target}`)
      return pushUpdate({
        callback_query: {
          id,
          from: userOf(chatId > 0 ? chatId : 1000),
          chat_instance: String(chatId),
          data,
          message: {
            message_id: target,
            date: Math.floor(Date.now() / 1000),
            chat: chatOf(chatId),
            from: me,
            ...(known?.text === undefined ? {} : { text: known.text })
          }
        }
      })
    }

    // ---- the Bot API methods -------------------------------------------------------------------

    const record = (method: string, params: Record<string, unknown>, outcome: RecordedCall["outcome"]) => {
      callLog.push({ method, params, at: Date.now(), outcome })
    }

    const newMessage = (method: string, params: Record<string, unknown>, extra: Record<string, unknown>): Message => {
      const chatId = num(params.chat_id)
      if (chatId === undefined) throw bad("chat not found")
      const messageId = nextMessageId++
      const text = typeof params.text === "string" ? params.text : typeof params.caption === "string" ? params.caption : undefined
      messages.set(`${chatId}:${messageId}`, { chatId, messageId, text, deleted: false })
      sentLog.push({ method, chatId, messageId, text, at: Date.now(), params })
      return {
        message_id: messageId,
        date: Math.floor(Date.now() / 1000),
        chat: chatOf(chatId),
        from: me,
        ...(typeof params.text === "string" ? { text: params.text } : {}),
        ...(typeof params.caption === "string" ? { caption: params.caption } : {}),
        ...extra
      } as Message
    }

    const fileFrom = (v: unknown, field: string) => {
      if (typeof v === "string" && v.length > 0) return { file_id: v, file_unique_id: v.slice(0, 16), file_size: 0 }
      if (typeof v === "object" && v !== null && "file" in v) {
        const f = v as { file: string; size: number }
        return { file_id: `file-${nextMessageId}`, file_unique_id: `u${nextMessageId}`, file_name: f.file, file_size: f.size }
      }
      throw bad(`there is no ${field} in the request`)
    }

    const waitForUpdates = (timeoutSeconds: number) =>
      Effect.raceFirst(Deferred.await(arrival), Effect.sleep(Duration.seconds(timeoutSeconds)))

    const visible = (u: TgUpdate) => allowed === undefined || allowed.length === 0 || allowed.includes(kindOf(u as never))

    const getUpdates = (params: Record<string, unknown>) =>
      Effect.gen(function*() {
        if (webhook !== undefined) return yield* Effect.fail(new ApiFailure(409, CONFLICT_WEBHOOK))
        if (conflict || activePoll) return yield* Effect.fail(new ApiFailure(409, CONFLICT_POLL))
        const offset = num(params.offset)
        const limit = Math.min(100, Math.max(1, num(params.limit) ?? 100))
        const timeout = Math.min(50, Math.max(0, num(params.timeout) ?? 0))
        if (Array.isArray(params.allowed_updates)) allowed = params.allowed_updates.filter((x): x is string => typeof x === "string")
        if (offset !== undefined) {
          if (offset > 0) {
            if (offset - 1 > confirmedId) confirmedId = Math.min(offset - 1, nextUpdateId - 1)
            queue = queue.filter((u) => u.update_id >= offset)
          } else if (offset < 0) {
            queue = queue.slice(offset)
          }
        }
        const take = () => {
          queue = queue.filter(visible)
          return queue.slice(0, limit)
        }
        const now = take()
        if (now.length > 0 || timeout === 0) return now
        activePoll = true
        return yield* Effect.ensuring(
          Effect.andThen(waitForUpdates(timeout), Effect.sync(take)),
          Effect.sync(() => {
            activePoll = false
          })
        )
      })

    const findMessage = (params: Record<string, unknown>, verb: string) => {
      const chatId = num(params.chat_id)
      const messageId = num(params.message_id)
      const m = chatId === undefined || messageId === undefined ? undefined : messages.get(`${chatId}:${messageId}`)
      if (m === undefined || m.deleted) throw bad(`message to ${verb} not found`)
      return m
    }

    const methods: Record<string, (params: Record<string, unknown>) => Effect.Effect<unknown, ApiFailure>> = {
      getMe: () => Effect.succeed(me),
      getUpdates,
      sendMessage: (p) =>
        Effect.try({
          try: () => {
            if (typeof p.text !== "string" || p.text.length === 0) throw bad("message text is empty")
            if (p.text.length > 4096) throw bad("message is too long")
            return newMessage("sendMessage", p, {})
          },
          catch: asFailure
        }),
      editMessageText: (p) =>
        Effect.try({
          try: () => {
            if (typeof p.text !== "string" || p.text.length === 0) throw bad("message text is empty")
            const m = findMessage(p, "edit")
            if (m.text === p.text) {
              throw bad("message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
            }
            m.text = p.text
            sentLog.push({ method: "editMessageText", chatId: m.chatId, messageId: m.messageId, text: p.text, at: Date.now(), params: p })
                  return { message_id: m.messageId, date: Math.floor(Date.now() / 1000), chat: chatOf(m.chatId), from: me, text: p.text, edit_date: Math.floor(Date.now() / 1000) }
          },
          catch: asFailure
        }),
      deleteMessage: (p) =>
        Effect.try({
          try: () => {
            const m = findMessage(p, "delete")
            m.deleted = true
            return true
          },
          catch: asFailure
        }),
      answerCallbackQuery: (p) =>
        Effect.try({
          try: () => {
            const id = typeof p.callback_query_id === "string" ? p.callback_query_id : ""
            if (!issuedCallbacks.delete(id)) throw bad("query is too old and response timeout expired or query ID is invalid")
            answers.push(p)
            return true
          },
          catch: asFailure
        }),
      sendChatAction: (p) =>
        Effect.try({
          try: () => {
            if (num(p.chat_id) === undefined) throw bad("chat not found")
            if (typeof p.action !== "string") throw bad("wrong parameter action in request")
            return true
          },
          catch: asFailure
        }),
      setMyCommands: (p) =>
        Effect.try({
          try: () => {
            if (!Array.isArray(p.commands)) throw bad("parameter \"commands\" is required")
            myCommands = p.commands
            return true
          },
          catch: asFailure
        }),
      getMyCommands: () => Effect.succeed(myCommands),
      setWebhook: (p) =>
        Effect.try({
          try: () => {
            const url = typeof p.url === "string" ? p.url : ""
            if (url === "") {
              webhook = undefined
              return true
            }
            if (!/^https?:\/\//.test(url)) throw bad("bad webhook: An HTTPS URL must be provided for webhook")
            const secret = p.secret_token
            if (secret !== undefined && (typeof secret !== "string" || !/^[A-Za-z0-9_-]{1,256}$/.test(secret))) {
              throw bad("secret token contains unallowed characters")
            }
            const max = num(p.max_connections) ?? 40
            if (max < 1 || max > 100) throw bad("bad webhook: max_connections must be between 1 and 100")
            if (p.drop_pending_updates === true) queue = []
            if (Array.isArray(p.allowed_updates)) allowed = p.allowed_updates.filter((x): x is string => typeof x === "string")
            webhook = {
              url,
              secretToken: typeof secret === "string" ? secret : undefined,
              maxConnections: max,
              allowedUpdates: allowed,
              lastErrorDate: undefined,
              lastErrorMessage: undefined,
              delivered: 0
            }
            signalArrival()
            return true
          },
          catch: asFailure
        }),
      deleteWebhook: (p) =>
        Effect.sync(() => {
          webhook = undefined
          if (p.drop_pending_updates === true) queue = []
          signalArrival()
          return true
        }),
      getWebhookInfo: () =>
        Effect.sync(() => ({
          url: webhook?.url ?? "",
          has_custom_certificate: false,
          pending_update_count: queue.length,
          ...(webhook?.maxConnections === undefined ? {} : { max_connections: webhook.maxConnections }),
          ...(webhook?.lastErrorDate === undefined ? {} : { last_error_date: webhook.lastErrorDate, last_error_message: webhook.lastErrorMessage }),
          ...(webhook?.allowedUpdates === undefined ? {} : { allowed_updates: webhook.allowedUpdates })
        })),
      sendPhoto: (p) =>
        Effect.try({
          try: () => {
            const f = fileFrom(p.photo, "photo in the request")
            return newMessage("sendPhoto", p, { photo: [{ ...f, width: 1, height: 1 }] })
          },
          catch: asFailure
        }),
      sendDocument: (p) =>
        Effect.try({
          try: () => {
            const f = fileFrom(p.document, "document in the request")
            return newMessage("sendDocument", p, { document: f })
          },
          catch: asFailure
        })
    }

    // ---- HTTP ----------------------------------------------------------------------------------

    const respond = (res: Http.ServerResponse, status: number, body: string, type = "application/json") => {
      if (res.headersSent || res.destroyed) return
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) })
      res.end(body)
    }
    const respondFailure = (res: Http.ServerResponse, f: ApiFailure) =>
      respond(res, f.status, JSON.stringify({ ok: false, error_code: f.status, description: f.description, ...(f.parameters ? { parameters: f.parameters } : {}) }))

    const takeFault = (method: string): Fault | undefined => {
      const i = faults.findIndex((f) => f.method === method || f.method === "*")
      if (i < 0) return undefined
      const f = faults[i]!
      if (--f.times <= 0) faults.splice(i, 1)
      return f.fault
    }

    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse) =>
      Effect.gen(function*() {
        const path = (req.url ?? "/").split("?")[0]!
        const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(path)
        if (m === null) return respondFailure(res, new ApiFailure(404, "Not Found"))
        const body = yield* readBody(req, maxBody)
        if (body === "too-large") {
          respondFailure(res, new ApiFailure(413, "Request Entity Too Large"))
          req.socket.destroy()
          return
        }
        const method = m[2]!
        if (decodeURIComponent(m[1]!) !== token) {
          record(method, {}, 401)
          return respondFailure(res, new ApiFailure(401, "Unauthorized"))
        }
        const parsed = yield* Effect.result(parseParams(req, body))
        if (parsed._tag === "Failure") {
          record(method, {}, parsed.failure.status)
          return respondFailure(res, parsed.failure)
        }
        const params = parsed.success
        const fault = takeFault(method)
        if (fault !== undefined) {
          record(method, params, fault._tag)
          switch (fault._tag) {
            case "TooManyRequests":
              return respondFailure(res, new ApiFailure(429, `Too Many Requests: retry after ${fault.retryAfter}`, { retry_after: fault.retryAfter }))
            case "ServerError":
              return respond(res, fault.status ?? 502, HTML_502, "text/html")
            case "Drop":
              req.socket.destroy()
              return
            case "Hang":
              // Never answers; the connection ends when the client gives up or the emulator stops.
              return yield* Effect.never
            case "MalformedJson":
              return respond(res, 200, "{\"ok\":true,\"result\":{\"message_id\":")
            case "Raw":
              if (fault.chunked === true) {
                if (res.headersSent || res.destroyed) return
                res.writeHead(fault.status ?? 200, { "content-type": fault.contentType ?? "application/json" })
                res.end(fault.body)
                return
              }
              return respond(res, fault.status ?? 200, fault.body, fault.contentType)
          }
        }
        const impl = methods[method]
        if (impl === undefined) {
          record(method, params, 404)
          return respondFailure(res, new ApiFailure(404, "Not Found: method not found"))
        }
        const result = yield* Effect.result(impl(params))
        if (result._tag === "Failure") {
          record(method, params, result.failure.status)
          return respondFailure(res, result.failure)
        }
        record(method, params, 200)
        signalSent()
        respond(res, 200, JSON.stringify({ ok: true, result: result.success }))
      })

    const requests = yield* FiberSet.make<void, never>()
    const run = yield* FiberSet.runtime(requests)()
    const server = Http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      const fiber = run(handle(req, res))
      // A client that goes away (aborted long poll, timeout) ends its request's fiber.
      res.once("close", () => {
        if (!res.writableFinished) fiber.interruptUnsafe()
      })
    })
    yield* Effect.acquireRelease(
      Effect.callback<void>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.void))
      }),
      () =>
        Effect.callback<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    const port = (server.address() as AddressInfo).port

    // ---- webhook delivery ----------------------------------------------------------------------

    const inDelivery = new Set<number>()
    const deliverOne = (hook: WebhookState, update: TgUpdate): Effect.Effect<void> =>
      Effect.gen(function*() {
        let delay = retryBase
        while (webhook === hook) {
          const ok = yield* Effect.tryPromise({
            try: (signal) =>
              fetch(hook.url, {
                method: "POST",
                headers: {
                  "content-type": "application/json",
                  ...(hook.secretToken === undefined ? {} : { "x-telegram-bot-api-secret-token": hook.secretToken })
                },
                body: JSON.stringify(update),
                signal
              }).then(async (r) => {
                await r.arrayBuffer()
                return r.status
              }),
            catch: (e) => e
          }).pipe(Effect.timeoutOption(webhookTimeout), Effect.result)
          const status = ok._tag === "Success" && ok.success._tag === "Some" ? ok.success.value : undefined
          if (status !== undefined && status >= 200 && status < 300) {
            queue = queue.filter((u) => u.update_id !== update.update_id)
            hook.delivered++
            return
          }
          hook.lastErrorDate = Math.floor(Date.now() / 1000)
          hook.lastErrorMessage = status === undefined ? "Connection refused" : `Wrong response from the webhook: ${status}`
          yield* Effect.sleep(Duration.millis(delay))
          delay = Math.min(retryMax, delay * 2)
        }
      })

    // One loop hands each deliverable update to its own fiber, at most max_connections at once.
    const deliveryLoop = Effect.gen(function*() {
      while (true) {
        const hook = webhook
        const next = hook === undefined || inDelivery.size >= hook.maxConnections
          ? undefined
          : queue.find((u) => !inDelivery.has(u.update_id) && visible(u))
        if (hook === undefined || next === undefined) {
          yield* Deferred.await(arrival)
          continue
        }
        inDelivery.add(next.update_id)
        yield* FiberSet.run(requests, deliverOne(hook, next).pipe(Effect.ensuring(Effect.sync(() => {
          inDelivery.delete(next.update_id)
          signalArrival()
        }))))
      }
    })
    yield* FiberSet.run(requests, deliveryLoop)

    const waitForSent: Emulator["waitForSent"] = (count, opts = {}) =>
      Effect.gen(function*() {
        const matching = () => (opts.chatId === undefined ? sentLog : sentLog.filter((m) => m.chatId === opts.chatId))
        const loop = Effect.gen(function*() {
          while (matching().length < count) {
            const d = Deferred.makeUnsafe<void>()
            sentWaiters.add(d)
            yield* Deferred.await(d)
          }
          return [...matching()]
        })
        const timeout = Duration.fromInputUnsafe(opts.timeout ?? "5 seconds")
        return yield* Effect.timeoutOrElse(loop, {
          duration: timeout,
          orElse: () => Effect.fail(new EmulatorTimeout({ waitingFor: `${count} sent message(s)${opts.chatId === undefined ? "" : ` in chat ${opts.chatId}`}`, seen: matching().length }))
        })
      })

    return {
      apiRoot: `http://127.0.0.1:${port}`,
      port,
      token,
      me,
      sendMessage,
      sendCommand: (chatId, command, args) => sendMessage({ chatId, text: `/${command.replace(/^\//, "")}${args === undefined || args === "" ? "" : ` ${args}`}` }),
      sendCallback,
      pushUpdate,
      sent: (chatId) => (chatId === undefined ? [...sentLog] : sentLog.filter((m) => m.chatId === chatId)),
      waitForSent,
      calls: (method) => (method === undefined ? [...callLog] : callLog.filter((c) => c.method === method)),
      inject: (method, fault, times = 1) => {
        faults.push({ method, fault, times })
      },
      setConflict: (on) => {
        conflict = on
      },
      pending: () => queue.length,
      polling: () => activePoll,
      confirmed: () => confirmedId,
      webhook: () => webhook,
      callbackAnswers: () => [...answers],
      commands: () => myCommands
    } satisfies Emulator
  })

const asFailure = (e: unknown): ApiFailure => (e instanceof ApiFailure ? e : new ApiFailure(500, `Internal Server Error: ${String(e)}`))
