/**
 * Telegram: the fiberbot adapter for the Telegram Bot API, by long polling or webhook.
 *
 * `Telegram.make(options)` gives an instance: `instance.adapter` goes into `Bot.make({ adapters })`,
 * and the instance's helpers take a handler's context (`tg.editText(ctx, "...")`,
 * `tg.answerCallback(ctx)`, `tg.chatAction(ctx)`, `tg.call("anyMethod", params)`). Replies go out
 * through the flood control (queued, not failed) and the client's retries. Updates keep their
 * Telegram field name as `kind` and their chat (or user) as ordering key, so one chat is handled
 * in order while chats run concurrently.
 *
 * ```ts
 * const tg = Telegram.make({ token: Redacted.make(process.env.TELEGRAM_BOT_TOKEN!) })
 * const bot = Bot.make({
 *   name: "echo",
 *   adapters: [tg.adapter],
 *   router: Router.empty.pipe(
 *     Router.command("start", (ctx) => ctx.reply("hi")),
 *     Router.on("callback_query", (ctx) => tg.answerCallback(ctx, "ok"))
 *   )
 * })
 * ```
 */
import type { Message, UserFromGetMe } from "@grammyjs/types"
import { Adapter, type Handler, type Update } from "@fiberbot/core"
import { Effect, Redacted } from "effect"
import * as Client from "./Client.ts"
import * as FloodControl from "./FloodControl.ts"
import * as Offsets from "./Offsets.ts"
import * as Polling from "./Polling.ts"
import type { ApiError } from "./TelegramError.ts"
import * as Webhook from "./Webhook.ts"

export interface Options {
  /** The bot token; a plain string is wrapped in `Redacted` at once. */
  readonly token: Redacted.Redacted<string> | string
  /** Adapter name (default `telegram`); task names start with it. */
  readonly name?: string | undefined
  /** Default `https://api.telegram.org`. */
  readonly apiRoot?: string | undefined
  /** Long polling (the default) or a webhook. */
  readonly polling?: Polling.Options | undefined
  readonly webhook?: Webhook.Options | undefined
  readonly client?: Omit<Client.ClientOptions, "token" | "apiRoot"> | undefined
  /** Outbound flood limits; `false` turns them off (a local Bot API server, benchmarks). */
  readonly flood?: FloodControl.Options | false | undefined
  /** Finished update ids remembered for dedupe across restarts in this process (default 10,000). */
  readonly dedupeWindow?: number | undefined
}

export interface Status {
  readonly mode: "polling" | "webhook"
  readonly running: boolean
  readonly me: UserFromGetMe | undefined
  /** Milliseconds since getUpdates last succeeded (polling liveness). */
  readonly sinceLastPollMs: number | undefined
  /** The offset that the next fetch confirms with. */
  readonly offset: number | undefined
  /** Fetched updates not yet below the confirmed offset. */
  readonly outstanding: number
  /** Update ids handed to the bot (or waiting for room) whose handling has not finished. */
  readonly inFlight: number
  readonly polling: Readonly<Polling.Stats>
  readonly webhook: Readonly<Webhook.Stats>
  /** Webhook server address once started (port 0 picks one). */
  readonly address: { readonly host: string; readonly port: number } | undefined
  readonly floodWaiting: number
}

export interface Telegram {
  readonly adapter: Adapter.Adapter
  readonly name: string
  /** Any Bot API method, typed; fails when the adapter is not running. */
  readonly call: <M extends Client.MethodName>(
    method: M,
    params?: Client.Params<M>,
    options?: Client.CallOptions
  ) => Effect.Effect<Client.Result<M>, ApiError | Adapter.ReplyError>
  /** Sends a message into the update's chat and returns it. */
  readonly send: (ctx: Handler.HandlerContext, text: string, extra?: Record<string, unknown>) => Effect.Effect<Message, Adapter.ReplyError>
  /** Edits the message a callback query came from. */
  readonly editText: (ctx: Handler.HandlerContext, text: string, extra?: Record<string, unknown>) => Effect.Effect<void, Adapter.ReplyError>
  /** Answers a callback query (stops the button's spinner), optionally with a toast. */
  readonly answerCallback: (
    ctx: Handler.HandlerContext,
    text?: string,
    extra?: { readonly show_alert?: boolean; readonly url?: string; readonly cache_time?: number }
  ) => Effect.Effect<void, Adapter.ReplyError>
  /** Shows "typing..." (or another action) in the update's chat. */
  readonly chatAction: (ctx: Handler.HandlerContext, action?: string) => Effect.Effect<void, Adapter.ReplyError>
  /**
   * `false` for a command addressed to another bot (`/start@other_bot` in a group), so a route can
   * ignore it: `Router.empty.command("start", (ctx) => tg.forMe(ctx) ? ctx.reply("hi") : Effect.void)`.
   */
  readonly forMe: (ctx: Handler.HandlerContext) => boolean
  readonly status: () => Status
}

interface Running {
  readonly client: Client.Client
  readonly flood: FloodControl.FloodControl | undefined
  readonly me: UserFromGetMe
  address: { host: string; port: number } | undefined
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null

export const make = (options: Options): Telegram => {
  const name = options.name ?? "telegram"
  const token = typeof options.token === "string" ? Redacted.make(options.token) : options.token
  const mode = options.webhook !== undefined ? "webhook" : "polling"
  const tracker = Offsets.make({ window: options.dedupeWindow })
  const pollStats: Polling.Stats = { fetched: 0, duplicates: 0, dropped: 0, failures: 0, invalid: 0, lastPollAt: undefined, lastError: undefined }
  const hookStats: Webhook.Stats = { received: 0, rejected: 0, duplicates: 0, busy: 0, refusedConnections: 0 }
  let running: Running | undefined

  const fail = (reason: string, cause?: unknown) => new Adapter.AdapterError({ adapter: name, reason, cause })
  const replyError = (reason: string, cause?: unknown) => new Adapter.ReplyError({ adapter: name, reason, cause })

  const start = (ctx: Adapter.AdapterContext) =>
    Effect.gen(function*() {
      const client = yield* Client.make({ ...options.client, token, apiRoot: options.apiRoot })
      const me = yield* client.call("getMe").pipe(
        Effect.mapError((e) =>
          e._tag === "TelegramError" && e.error_code === 401
            ? fail("Telegram rejected the bot token (401 Unauthorized). Check the token (TELEGRAM_BOT_TOKEN) with @BotFather; it may have been revoked.", e)
            : fail(`getMe failed: ${e.message}`, e)
        )
      )
      const flood = options.flood === false ? undefined : FloodControl.make(options.flood)
      const state: Running = { client, flood, me, address: undefined }
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          running = state
        }),
        () =>
          Effect.sync(() => {
            if (running === state) running = undefined
          })
      )

      if (mode === "polling") {
        const polling = yield* Polling.prepare({ adapter: name, client, ctx, tracker, stats: pollStats, options: options.polling ?? {} }).pipe(
          Effect.mapError((e) => fail(e.reason))
        )
        // Registered before the poll task is forked, so it runs after the task is interrupted.
        yield* Effect.addFinalizer(() => polling.confirm)
        yield* ctx.fork(`${name}/poll`, polling.loop)
        return
      }

      const hook = options.webhook!
      tracker.reset()
      const address = yield* Webhook.serve({ adapter: name, ctx, tracker, stats: hookStats, options: hook }).pipe(
        Effect.mapError((e) => fail(e.message, e))
      )
      state.address = { host: address.address, port: address.port }
      const url = hook.url ?? `http://${address.address}:${address.port}${hook.path ?? "/telegram"}`
      if (hook.deleteOnStop === true) {
        yield* Effect.addFinalizer(() =>
          client.call("deleteWebhook", {}, { retry: false, timeout: "2 seconds" }).pipe(
            Effect.catch((e) => Effect.logWarning(`telegram: deleteWebhook on stop failed: ${e.message}`))
          )
        )
      }
      yield* client.call("setWebhook", {
        url,
        ...(hook.secretToken === undefined ? {} : { secret_token: Redacted.value(hook.secretToken) }),
        ...(hook.maxConnections === undefined ? {} : { max_connections: hook.maxConnections }),
        ...(hook.allowedUpdates === undefined ? {} : { allowed_updates: [...hook.allowedUpdates] as never }),
        ...(hook.dropPendingUpdates === undefined ? {} : { drop_pending_updates: hook.dropPendingUpdates })
      }).pipe(Effect.mapError((e) => fail(`setWebhook failed: ${e.message}`, e)))
    })

  const withRunning = <A, E>(f: (r: Running) => Effect.Effect<A, E>): Effect.Effect<A, E | Adapter.ReplyError> =>
    Effect.suspend((): Effect.Effect<A, E | Adapter.ReplyError> =>
      running === undefined ? Effect.fail(replyError("the Telegram adapter is not running")) : f(running)
    )

  /** The chat to answer into: the update's key when it is a chat or user id. */
  const chatOf = (update: Update.Update): number | string | undefined =>
    /^-?\d+$/.test(update.key) ? Number(update.key) : undefined

  const sendInto = (chatId: number | string, method: "sendMessage" | "sendDocument", params: Record<string, unknown>) =>
    withRunning((r) =>
      Effect.gen(function*() {
        if (r.flood !== undefined) yield* r.flood.acquire(chatId).pipe(Effect.mapError((e) => replyError(e.message, e)))
        return yield* r.client.call(method, { chat_id: chatId, ...params } as never).pipe(
          Effect.mapError((e) => replyError(e.message, e))
        ) as Effect.Effect<Message, Adapter.ReplyError>
      })
    )

  const reply = (update: Update.Update, message: Update.OutboundMessage) =>
    Effect.suspend(() => {
      const chatId = chatOf(update)
      if (chatId === undefined) return Effect.fail(replyError(`update ${update.id} (${update.kind}) has no chat to reply into`))
      const extra = message.extra ?? {}
      if (message.data !== undefined) {
        return Effect.asVoid(sendInto(chatId, "sendDocument", {
          document: new Client.InputFile(message.data, typeof extra.filename === "string" ? extra.filename : "file.bin"),
          ...(message.text === undefined ? {} : { caption: message.text }),
          ...extra
        }))
      }
      return Effect.asVoid(sendInto(chatId, "sendMessage", { text: message.text ?? "", ...extra }))
    })

  const callbackQuery = (ctx: Handler.HandlerContext) => {
    const payload = ctx.update.payload
    return isObject(payload) && isObject(payload.callback_query) ? payload.callback_query : undefined
  }

  const instance: Telegram = {
    // its status is the bot's: poll liveness (`sinceLastPollMs`), offsets, webhook figures
    adapter: Adapter.make({ name, start, reply, status: () => ({ ...instance.status() }) }),
    name,
    call: (method, params, callOptions) => withRunning((r) => r.client.call(method, params, callOptions)),
    send: (ctx, text, extra) =>
      Effect.suspend(() => {
        const chatId = chatOf(ctx.update)
        if (chatId === undefined) return Effect.fail(replyError(`update ${ctx.update.id} has no chat to send into`))
        return sendInto(chatId, "sendMessage", { text, ...extra })
      }),
    editText: (ctx, text, extra) =>
      Effect.suspend(() => {
        const cq = callbackQuery(ctx)
        const message = cq !== undefined && isObject(cq.message) ? cq.message : undefined
        const chat = message !== undefined && isObject(message.chat) ? message.chat.id : undefined
        if (message === undefined || chat === undefined) {
          return Effect.fail(replyError("editText needs a callback query on a message (the message to edit)"))
        }
        return withRunning((r) =>
          Effect.gen(function*() {
            if (r.flood !== undefined) yield* r.flood.acquire(chat as number).pipe(Effect.mapError((e) => replyError(e.message, e)))
            yield* r.client.call("editMessageText", { chat_id: chat as number, message_id: message.message_id as number, text, ...extra }).pipe(
              Effect.mapError((e) => replyError(e.message, e))
            )
          })
        )
      }),
    answerCallback: (ctx, text, extra) =>
      Effect.suspend(() => {
        const cq = callbackQuery(ctx)
        if (cq === undefined || typeof cq.id !== "string") return Effect.fail(replyError("answerCallback needs a callback_query update"))
        return withRunning((r) =>
          r.client.call("answerCallbackQuery", { callback_query_id: cq.id as string, ...(text === undefined ? {} : { text }), ...extra }).pipe(
            Effect.mapError((e) => replyError(e.message, e)),
            Effect.asVoid
          )
        )
      }),
    chatAction: (ctx, action = "typing") =>
      Effect.suspend(() => {
        const chatId = chatOf(ctx.update)
        if (chatId === undefined) return Effect.fail(replyError(`update ${ctx.update.id} has no chat`))
        return withRunning((r) =>
          r.client.call("sendChatAction", { chat_id: chatId, action: action as never }).pipe(
            Effect.mapError((e) => replyError(e.message, e)),
            Effect.asVoid
          )
        )
      }),
    forMe: (ctx) => {
      const target = ctx.command?.bot
      const username = running?.me.username
      return target === undefined || username === undefined || target.toLowerCase() === username.toLowerCase()
    },
    status: () => ({
      mode,
      running: running !== undefined,
      me: running?.me,
      sinceLastPollMs: pollStats.lastPollAt === undefined ? undefined : Date.now() - pollStats.lastPollAt,
      offset: tracker.offset(),
      outstanding: tracker.outstanding(),
      inFlight: tracker.inFlight(),
      polling: { ...pollStats },
      webhook: { ...hookStats },
      address: running?.address,
      floodWaiting: running?.flood?.waiting() ?? 0
    })
  }
  return instance
}
