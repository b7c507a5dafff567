/**
 * DiscordAdapter: Discord as a fiberbot adapter (gateway shards, REST, optional HTTP interactions).
 *
 * `start` learns the shard count and identify limits from `GET /gateway/bot` (or config), runs each
 * shard as a named task (`discord/shard-<id>`) and returns once every shard is ready (READY or
 * RESUMED). Dispatches become Updates: `MESSAGE_CREATE` is kind `message` (text = content),
 * `INTERACTION_CREATE` is kind `interaction` (text = `/name` for slash commands, callbackData =
 * `custom_id` for components), every other event is its name lowercased; the ordering key is the
 * channel. `ctx.reply` creates a message, or answers the interaction (first reply = the response,
 * later ones = followups). Interaction helpers (`defer`, `respond`, `followup`, `react`) are on
 * the adapter instance and take the handler's context.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { Deferred, Effect, FiberSet, Redacted, Scope } from "effect"
import type { APIInteractionResponse } from "discord-api-types/v10"
import { Adapter, type Handler, Listen, Update } from "@fiberbot/core"
import { type GatewayFatal, type IdentifyLimitExhausted, PayloadTooLarge, RestError, ShardUnavailable } from "./Errors.ts"
import * as IdentifyThrottler from "./IdentifyThrottler.ts"
import * as Interactions from "./Interactions.ts"
import * as Rest from "./Rest.ts"
import * as SessionStore from "./SessionStore.ts"
import * as Shard from "./Shard.ts"

export interface Config {
  /** Adapter name (default "discord"). */
  readonly name?: string | undefined
  readonly token: Redacted.Redacted<string>
  readonly intents: number
  /** Shard count, or "auto" for `/gateway/bot`'s recommendation (default "auto"). */
  readonly shards?: number | "auto" | undefined
  /** The shards this process runs (default: all). */
  readonly shardIds?: ReadonlyArray<number> | undefined
  /** Gateway URL; default: the one `/gateway/bot` returns. */
  readonly gatewayUrl?: string | undefined
  /** REST base, default `https://discord.com/api/v10`. */
  readonly restUrl?: string | undefined
  /** Identify buckets when `/gateway/bot` is not asked (default 1). */
  readonly maxConcurrency?: number | undefined
  /** `zlib-stream` transport compression (default true). */
  readonly compress?: boolean | undefined
  readonly store?: SessionStore.SessionStore | undefined
  /** How stopping closes the shards: "offline" (1000, session ends) or "resumable" (default "offline"). */
  readonly stopMode?: "offline" | "resumable" | undefined
  /** Wait for every shard to be ready before `start` returns (default true). */
  readonly waitForReady?: boolean | undefined
  readonly largeThreshold?: number | undefined
  readonly presence?: unknown
  readonly rest?: Partial<Omit<Rest.Options, "token" | "baseUrl">> | undefined
  readonly timing?: Partial<Pick<Shard.ShardConfig,
    "openTimeoutMs" | "helloTimeoutMs" | "readyTimeoutMs" | "closeTimeoutMs" | "backoffBaseMs" | "backoffMaxMs" | "stableAfterMs" | "maxResumeFailures" | "inboxHighWater"
  >> | undefined
  /** Serve HTTP interactions as well (an endpoint Discord POSTs to). */
  readonly interactions?: {
    readonly publicKey: string
    readonly host?: string | undefined
    readonly port?: number | undefined
    readonly path?: string | undefined
    readonly bodyLimit?: number | undefined
    /** Answer "deferred" when the handler has not replied by then (default 2500 ms). */
    readonly deferAfterMs?: number | undefined
  } | undefined
  /** Dispatches not turned into updates (default: RESUMED only). */
  readonly ignore?: ReadonlyArray<string> | undefined
}

/** What `update.payload` holds for Discord updates. */
export interface DiscordPayload {
  readonly t: string
  readonly d: any
  readonly shard: number
  readonly s: number | undefined
  /** "http" when the interaction came from the HTTP endpoint. */
  readonly via: "gateway" | "http"
}

/** A class, not a literal, like `Update.of` (see there why): one is made per dispatch. */
class Payload implements DiscordPayload {
  readonly t: string
  readonly d: any
  readonly shard: number
  readonly s: number | undefined
  readonly via: "gateway" | "http"
  constructor(t: string, d: any, shard: number, s: number | undefined, via: "gateway" | "http") {
    this.t = t
    this.d = d
    this.shard = shard
    this.s = s
    this.via = via
  }
}

interface InteractionState {
  readonly id: string
  readonly token: string
  readonly applicationId: string
  phase: "new" | "deferred" | "responded"
  /** Pending HTTP request waiting for the first response. */
  http: Deferred.Deferred<APIInteractionResponse> | undefined
}

export interface DiscordAdapter {
  readonly adapter: Adapter.Adapter
  readonly rest: () => Rest.Rest
  readonly shards: () => ReadonlyArray<Shard.ShardStatus>
  /** Gateway dispatches shed because the bot was busy (intake full with reject-busy, or breaker open). */
  readonly shed: () => number
  /** The HTTP interactions endpoint, once started. */
  readonly interactionsUrl: () => string | undefined
  /** Sends a gateway event through shard `shard` (presence update, request guild members ...). */
  readonly send: (shard: number, op: number, d: unknown) => Effect.Effect<void, PayloadTooLarge | ShardUnavailable>
  readonly setStopMode: (mode: "offline" | "resumable") => void
  /** Acknowledges an interaction now, answering later (type 5: "thinking..."). */
  readonly defer: (ctx: Handler.HandlerContext) => Effect.Effect<void, RestError>
  /** Sends an interaction response as is (modals, autocomplete, update message ...). */
  readonly respond: (ctx: Handler.HandlerContext, response: APIInteractionResponse) => Effect.Effect<void, RestError>
  readonly react: (ctx: Handler.HandlerContext, emoji: string) => Effect.Effect<void, RestError>
}

const MAX_INTERACTIONS = 10_000

/** A snowflake or other id as Discord sends it: a non-empty string (numbers tolerated). */
const idOf = (v: unknown): string | undefined =>
  typeof v === "string" && v.length > 0 ? v : typeof v === "number" && Number.isSafeInteger(v) ? String(v) : undefined

const channelOf = (d: any): string | undefined => idOf(d?.channel_id) ?? idOf(d?.channel?.id)

const isObject = (d: unknown): d is Record<string, any> => typeof d === "object" && d !== null && !Array.isArray(d)

/** Shard counts we accept from `/gateway/bot`: Discord's largest bots run a few thousand. */
const MAX_SHARDS = 65_536

/** Why a `/gateway/bot` answer cannot be used, or `undefined`. */
const gatewayBotError = (info: unknown): string | undefined => {
  if (!isObject(info)) return "not an object"
  const nonNegative = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v >= 0
  if (typeof info.url !== "string" || !/^wss?:\/\//.test(info.url)) return "url is not a ws:// or wss:// URL"
  try {
    new URL(info.url)
  } catch {
    return "url does not parse"
  }
  if (!Number.isInteger(info.shards) || info.shards < 1 || info.shards > MAX_SHARDS) return `shards is not an integer in 1..${MAX_SHARDS}`
  const limit = info.session_start_limit
  if (!isObject(limit)) return "session_start_limit is missing"
  if (!Number.isInteger(limit.max_concurrency) || limit.max_concurrency < 1) return "max_concurrency is not a positive integer"
  if (!nonNegative(limit.remaining) || !nonNegative(limit.reset_after)) return "remaining or reset_after is not a number >= 0"
  return undefined
}

export const make = (config: Config): DiscordAdapter => {
  const name = config.name ?? "discord"
  const ignore = new Set(config.ignore ?? ["RESUMED"])
  const store = config.store ?? SessionStore.memory()
  let rest: Rest.Rest | undefined
  let shards: Array<Shard.Shard> = []
  /** Gateway dispatches shed because the bot was busy (see `onDispatch`). */
  let shed = 0
  let busySpell = false
  let stopMode = config.stopMode ?? "offline"
  let interactionsUrl: string | undefined
  const interactions = new Map<string, InteractionState>()
  const identifyHistory = new Map<number, number>()

  /** What a reply to an interaction needs: its id, token and application id. */
  const isInteraction = (d: unknown): d is Record<string, any> =>
    isObject(d) && idOf(d.id) !== undefined && typeof d.token === "string" && d.token.length > 0 && idOf(d.application_id) !== undefined

  const track = (d: any, via: "gateway" | "http"): InteractionState => {
    const state: InteractionState = {
      id: String(d.id),
      token: String(d.token),
      applicationId: String(d.application_id),
      phase: "new",
      http: via === "http" ? Deferred.makeUnsafe<APIInteractionResponse>() : undefined
    }
    if (interactions.size >= MAX_INTERACTIONS) interactions.delete(interactions.keys().next().value!)
    interactions.set(state.id, state)
    return state
  }

  /**
   * A dispatch as an update. `d` is whatever the gateway sent: nothing here may throw on it. A
   * message or interaction without the ids it needs becomes a plain update of its type.
   */
  const toUpdate = (t: string, d: any, shard: number, s: number | undefined, via: "gateway" | "http"): Update.Update<DiscordPayload> => {
    const payload = new Payload(t, d, shard, s, via)
    const id = isObject(d) ? idOf(d.id) : undefined
    if (t === "MESSAGE_CREATE" && id !== undefined) {
      const channel = idOf(d.channel_id)
      if (channel !== undefined) return Update.of(name, "message", id, channel, payload, typeof d.content === "string" ? d.content : undefined)
    }
    if (t === "INTERACTION_CREATE" && id !== undefined) {
      const data = isObject(d.data) ? d.data : undefined
      const text = d.type === 2 && typeof data?.name === "string"
        ? `/${data.name}${Array.isArray(data.options) && data.options.length > 0 ? " " + data.options.map((o: any) => String(o?.value ?? "")).join(" ") : ""}`
        : undefined
      const callbackData = (d.type === 3 || d.type === 5) && typeof data?.custom_id === "string" ? data.custom_id : undefined
      return Update.of(name, "interaction", id, channelOf(d) ?? id, payload, text, callbackData)
    }
    return Update.of(
      name,
      t.toLowerCase(),
      id ?? `${shard}:${s ?? 0}`,
      (isObject(d) ? channelOf(d) ?? idOf(d.guild_id) : undefined) ?? `shard-${shard}`,
      payload
    )
  }

  const needRest = () => {
    if (rest === undefined) throw new Error("the discord adapter is not started")
    return rest
  }

  const stateOf = (update: Update.Update): InteractionState | undefined => {
    const p = update.payload as DiscordPayload
    const id = p.t === "INTERACTION_CREATE" && isObject(p.d) ? idOf(p.d.id) : undefined
    return id === undefined ? undefined : interactions.get(id)
  }

  /** `extra` holds Discord message fields (embeds, components ...); `filename` names `data`. */
  const messageBody = (message: Update.OutboundMessage): any => {
    const { filename: _filename, ...extra } = message.extra ?? {}
    return { ...(message.text === undefined ? {} : { content: message.text }), ...extra }
  }

  const filesOf = (message: Update.OutboundMessage): ReadonlyArray<Rest.FileUpload> | undefined =>
    message.data === undefined
      ? undefined
      : [{ name: typeof message.extra?.filename === "string" ? message.extra.filename : "file.bin", data: message.data }]

  /** Gives the interaction its response: through the pending HTTP request if there is one. */
  const respondTo = (state: InteractionState, response: APIInteractionResponse, files?: ReadonlyArray<Rest.FileUpload>) =>
    Effect.suspend(() => {
      if (state.http !== undefined && files === undefined && Deferred.doneUnsafe(state.http, Effect.succeed(response))) {
        return Effect.void
      }
      return needRest().createInteractionResponse(state.id, state.token, response, files)
    })

  const replyInteraction = (state: InteractionState, message: Update.OutboundMessage) =>
    Effect.suspend(() => {
      const body = messageBody(message)
      const files = filesOf(message)
      if (state.phase === "new" && state.http !== undefined && files !== undefined) {
        // an HTTP response body cannot carry files: acknowledge now, then edit with the files
        if (Deferred.doneUnsafe(state.http, Effect.succeed({ type: 5 }))) state.phase = "deferred"
      }
      if (state.phase === "new") {
        state.phase = "responded"
        return respondTo(state, { type: 4, data: body }, files)
      }
      if (state.phase === "deferred") {
        state.phase = "responded"
        return Effect.asVoid(needRest().editOriginal(state.applicationId, state.token, body, files))
      }
      return Effect.asVoid(needRest().createFollowup(state.applicationId, state.token, body, files))
    })

  const reply = (update: Update.Update, message: Update.OutboundMessage) =>
    Effect.suspend(() => {
      const state = stateOf(update)
      if (state !== undefined) return replyInteraction(state, message)
      const p = update.payload as DiscordPayload
      const channel = channelOf(p.d)
      if (channel === undefined) return Effect.fail(new RestError({ method: "POST", route: "reply", status: undefined, code: undefined, reason: `a ${p.t} has no channel to reply to` }))
      return Effect.asVoid(needRest().createMessage(channel, messageBody(message), filesOf(message)))
    }).pipe(Effect.mapError((e) => new Adapter.ReplyError({ adapter: name, reason: e.message, cause: e })))

  const serveInteractions = (ctx: Adapter.AdapterContext, options: NonNullable<Config["interactions"]>) =>
    Effect.gen(function*() {
      const verifier = yield* Effect.try({
        try: () => Interactions.makeVerifier(options.publicKey),
        catch: (e) => new Adapter.AdapterError({ adapter: name, reason: String(e) })
      })
      const path = options.path ?? "/interactions"
      const limit = options.bodyLimit ?? 256 * 1024
      const deferAfter = options.deferAfterMs ?? 2500
      const set = yield* FiberSet.make<void, never>()
      const run = yield* FiberSet.runtime(set)<never>()
      const handle = (req: IncomingMessage, res: ServerResponse) =>
        Effect.gen(function*() {
          const url = URL.parse(req.url ?? "/", "http://localhost")
          if (url === null) return Interactions.send(res, 400, { error: "bad request target" })
          if (url.pathname !== path) return Interactions.send(res, 404, { error: "not found" })
          if (req.method !== "POST") return Interactions.send(res, 405, { error: "POST only" })
          const raw = yield* Interactions.readBody(req, limit)
          if (raw === undefined) return Interactions.send(res, 413, { error: "body too large" })
          const verdict = Interactions.check(verifier, req.headers, raw)
          if (verdict._tag === "reply") return Interactions.send(res, verdict.status, verdict.body)
          const state = track(verdict.raw, "http")
          const offered = yield* ctx.offer(toUpdate("INTERACTION_CREATE", verdict.raw, -1, undefined, "http"))
          if (offered !== "accepted") return Interactions.send(res, 503, { error: `bot ${offered}` })
          const answer = yield* Deferred.await(state.http!).pipe(Effect.timeoutOption(deferAfter))
          if (answer._tag === "Some") return Interactions.send(res, 200, answer.value)
          // too slow for the 3 s window: acknowledge now, the reply becomes an edit
          if (Deferred.doneUnsafe(state.http!, Effect.succeed({ type: 5 }))) {
            if (state.phase === "new") state.phase = "deferred"
            return Interactions.send(res, 200, { type: 5 })
          }
          const late = yield* Deferred.await(state.http!)
          return Interactions.send(res, 200, late)
        }).pipe(Effect.ensuring(Effect.sync(() => {
          if (!res.headersSent) Interactions.send(res, 500, { error: "interrupted" })
        })))
      const server = createServer((req, res) => {
        run(handle(req, res))
      })
      server.requestTimeout = 10_000
      server.headersTimeout = 5_000
      yield* Effect.acquireRelease(
        Listen.listen(server, { port: options.port ?? 0, host: options.host ?? "127.0.0.1" }, (e) =>
          run(Effect.logWarning(`${name}: interactions endpoint: ${e.message} (it keeps listening)`))).pipe(
            Effect.map((a) => {
              interactionsUrl = `http://${a.address}:${a.port}${path}`
            }),
            Effect.mapError((e) => new Adapter.AdapterError({ adapter: name, reason: `interactions endpoint: ${e.message}`, cause: e.cause }))
          ),
        () =>
          Effect.callback<void>((resume) => {
            server.close(() => resume(Effect.void))
            server.closeAllConnections()
          }).pipe(Effect.timeoutOption("2 seconds"))
      )
    })

  const start = (ctx: Adapter.AdapterContext): Effect.Effect<void, Adapter.AdapterError, Scope.Scope> =>
    Effect.gen(function*() {
      const fail = (reason: string, cause?: unknown) => new Adapter.AdapterError({ adapter: name, reason, cause })
      const r = yield* Rest.make({ token: config.token, baseUrl: config.restUrl, ...config.rest })
      rest = r
      yield* Effect.addFinalizer(() => r.close)
      interactions.clear()

      let gatewayUrl = config.gatewayUrl
      let count = typeof config.shards === "number" ? config.shards : undefined
      let maxConcurrency = config.maxConcurrency ?? 1
      let remaining = Number.POSITIVE_INFINITY
      let resetAfter = 0
      if (gatewayUrl === undefined || count === undefined || config.maxConcurrency === undefined) {
        const info = yield* r.getGatewayBot().pipe(Effect.mapError((e) => fail(`GET /gateway/bot failed: ${e.message}`, e)))
        const unusable = gatewayBotError(info)
        if (unusable !== undefined) return yield* fail(`GET /gateway/bot answered something unusable: ${unusable}`)
        gatewayUrl = gatewayUrl ?? info.url
        count = count ?? info.shards
        maxConcurrency = config.maxConcurrency ?? info.session_start_limit.max_concurrency
        remaining = info.session_start_limit.remaining
        resetAfter = info.session_start_limit.reset_after
      }
      const ids = config.shardIds ?? Array.from({ length: count }, (_, i) => i)
      const bad = ids.filter((id) => !Number.isInteger(id) || id < 0 || id >= count!)
      if (bad.length > 0) return yield* fail(`shard ids ${bad.join(", ")} are outside 0..${count - 1}`)
      if (remaining < ids.length) {
        return yield* fail(`only ${remaining} session starts left today for ${ids.length} shards; resets in ${Math.ceil(resetAfter / 60000)} min`)
      }
      const throttler = yield* IdentifyThrottler.make({ maxConcurrency, remaining, resetAfterMs: resetAfter, history: identifyHistory })
      const t = config.timing ?? {}
      const refused = new WeakSet<Shard.GatewayPayload>()
      const onDispatch = (p: Shard.GatewayPayload, shard: Shard.Shard): Effect.Effect<void> => {
        const type = p.t!
        if (ignore.has(type)) return Effect.void
        const d = p.d as any
        if (type === "INTERACTION_CREATE" && isInteraction(d)) track(d, "gateway")
        // The shard keeps reading and heartbeating whatever the bot can take: a dispatch it is too
        // busy for (intake full with reject-busy, or the breaker open) is shed and counted, never
        // buffered without bound. The first of each busy spell is logged.
        const offered = refused.delete(p) ? Effect.succeed("busy" as const) : ctx.offer(toUpdate(type, d, shard.id, p.s ?? undefined, "gateway"))
        return Effect.flatMap(offered, (result) => {
          if (result !== "busy") {
            busySpell = false
            return Effect.void
          }
          shed++
          if (busySpell) return Effect.void
          busySpell = true
          return Effect.logWarning(`${name}: the bot is busy; shedding dispatches until it takes them again (${shed} shed so far)`)
        })
      }
      // The fast path from the socket's callback: with room in the bot, a dispatch is handed over
      // without an effect. Busy answers go the effectful way (shed, counted, the first one logged).
      const onDispatchNow = (p: Shard.GatewayPayload, shard: Shard.Shard): boolean => {
        const type = p.t!
        if (ignore.has(type)) return true
        if (type === "INTERACTION_CREATE" || busySpell) return false
        const result = ctx.tryOffer(toUpdate(type, p.d as any, shard.id, p.s ?? undefined, "gateway"))
        if (result === undefined) return false
        if (result === "busy") {
          // already refused: `onDispatch` only counts and logs it, without offering it again
          refused.add(p)
          return false
        }
        return true
      }
      shards = []
      for (const id of ids) {
        const shard = yield* Shard.make({
          id,
          count,
          token: config.token,
          intents: config.intents,
          gatewayUrl,
          compress: config.compress ?? true,
          largeThreshold: config.largeThreshold,
          presence: config.presence,
          openTimeoutMs: t.openTimeoutMs ?? 15_000,
          helloTimeoutMs: t.helloTimeoutMs ?? 20_000,
          readyTimeoutMs: t.readyTimeoutMs ?? 30_000,
          closeTimeoutMs: t.closeTimeoutMs ?? 2_000,
          backoffBaseMs: t.backoffBaseMs ?? 1_000,
          backoffMaxMs: t.backoffMaxMs ?? 60_000,
          stableAfterMs: t.stableAfterMs ?? 60_000,
          maxResumeFailures: t.maxResumeFailures ?? 2,
          inboxHighWater: t.inboxHighWater ?? 1024,
          store,
          throttler,
          onDispatch,
          onDispatchNow
        })
        shard.setStopMode(stopMode)
        shards.push(shard)
        yield* ctx.fork(`discord/shard-${id}`, shard.run)
      }
      if (config.interactions !== undefined) yield* serveInteractions(ctx, config.interactions)
      if (config.waitForReady ?? true) {
        yield* Effect.all(shards.map((s) => s.ready), { concurrency: "unbounded", discard: true }).pipe(
          Effect.mapError((e: GatewayFatal | IdentifyLimitExhausted) => fail(e.message, e))
        )
      }
    })

  const interactionOf = (ctx: Handler.HandlerContext) => {
    const state = stateOf(ctx.update)
    if (state === undefined) {
      return Effect.fail(new RestError({ method: "POST", route: "interaction", status: undefined, code: undefined, reason: `update ${ctx.update.id} is not an interaction` }))
    }
    return Effect.succeed(state)
  }

  return {
    // per-shard state in the bot's status and stop report
    adapter: Adapter.make({ name, start, reply, status: () => ({ shards: shards.map((s) => s.status()), shed }) }),
    rest: needRest,
    shards: () => shards.map((s) => s.status()),
    shed: () => shed,
    interactionsUrl: () => interactionsUrl,
    send: (shard, op, d) => {
      const s = shards.find((x) => x.id === shard)
      return s === undefined ? Effect.fail(new ShardUnavailable({ shard, state: "not run by this process" })) : s.send(op, d)
    },
    setStopMode: (mode) => {
      stopMode = mode
      for (const s of shards) s.setStopMode(mode)
    },
    defer: (ctx) =>
      Effect.flatMap(interactionOf(ctx), (state) => {
        if (state.phase !== "new") return Effect.void
        state.phase = "deferred"
        return respondTo(state, { type: 5 })
      }),
    respond: (ctx, response) =>
      Effect.flatMap(interactionOf(ctx), (state) => {
        const first = state.phase === "new"
        state.phase = response.type === 5 || response.type === 6 ? "deferred" : "responded"
        return first ? respondTo(state, response) : Effect.asVoid(needRest().createFollowup(state.applicationId, state.token, (response as any).data ?? {}))
      }),
    react: (ctx, emoji) =>
      Effect.suspend(() => {
        const p = ctx.update.payload as DiscordPayload
        return needRest().addReaction(String(p.d.channel_id), String(p.d.id), emoji)
      })
  }
}

