/**
 * DiscordEmulator: a loopback Discord (gateway + REST + an interactions client) in one scope.
 *
 * One HTTP server on 127.0.0.1 (OS-assigned port) serves the REST API under `/api/v10` and
 * upgrades `/gateway` (the URL `/gateway/bot` hands out) and `/resume` (the `resume_gateway_url`
 * READY hands out, so a test can see the client switch URLs). Closing the scope closes every
 * connection and the server. The user-side API injects messages and interactions, the fault API
 * produces every close code, op 7, op 9, op 1, zombies and dropped links, and `frames` /
 * `requests` record everything seen.
 */
import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto"
import { createServer, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Clock, Data, Effect, Scope } from "effect"
import { WebSocketServer } from "ws"
import { Gateway, type Frame, type Connection, type Session } from "./GatewayEmulator.ts"
import { Rest, type RecordedRequest, type Script, type StoredMessage } from "./RestEmulator.ts"

export type { Connection, Frame, RecordedRequest, Script, Session, StoredMessage }

export interface Options {
  readonly token?: string | undefined
  /** HELLO's heartbeat_interval in ms (default 41250). */
  readonly heartbeatInterval?: number | undefined
  /** Recommended shard count from `/gateway/bot` (default 1). */
  readonly shards?: number | undefined
  readonly maxConcurrency?: number | undefined
  /** Minimum ms between identifies of one bucket (default 5000; 0 turns the check off, for benchmarks). */
  readonly identifySpacing?: number | undefined
  readonly sessionStartRemaining?: number | undefined
  /** Client events per connection per 60 s before 4008 (default 120). */
  readonly sendLimit?: number | undefined
  /** Privileged intents bits the app may use (default: all). */
  readonly allowedPrivilegedIntents?: number | undefined
  readonly sessionTtl?: number | undefined
  readonly guilds?: ReadonlyArray<string> | undefined
  readonly closeAfterInvalidSession?: boolean | undefined
  readonly bucketLimit?: number | undefined
  readonly bucketWindow?: number | undefined
  readonly globalLimit?: number | undefined
  /** READY's `resume_gateway_url` (default: this emulator's `/resume` path), e.g. a broken one for a test. */
  readonly resumeUrl?: string | undefined
}

export class EmulatorError extends Data.TaggedError("EmulatorError")<{ readonly reason: string; readonly cause?: unknown }> {}

export interface InteractionResult {
  readonly status: number
  readonly body: unknown
}

export interface DiscordEmulator {
  readonly token: string
  readonly port: number
  /** `ws://127.0.0.1:<port>/gateway` */
  readonly gatewayUrl: string
  /** `ws://127.0.0.1:<port>/resume` */
  readonly resumeUrl: string
  /** `http://127.0.0.1:<port>/api/v10` */
  readonly restUrl: string
  /** Hex Ed25519 public key that `postInteraction` signs with. */
  readonly publicKey: string
  readonly gateway: Gateway
  readonly rest: Rest
  readonly frames: () => ReadonlyArray<Frame>
  readonly requests: () => ReadonlyArray<RecordedRequest>
  // user side
  readonly messageCreate: (fields: { readonly channelId: string; readonly content: string; readonly authorId?: string; readonly guildId?: string; readonly shard?: number }) => Array<number>
  readonly interactionCreate: (fields: { readonly channelId: string; readonly name: string; readonly options?: ReadonlyArray<{ name: string; type: number; value: unknown }>; readonly shard?: number }) => { readonly id: string; readonly token: string }
  readonly dispatch: (t: string, d: unknown, shard?: number) => Array<number>
  /** POSTs a signed interaction to a bot's HTTP endpoint, as Discord would. */
  readonly postInteraction: (url: string, body: unknown, options?: { readonly badSignature?: boolean; readonly timestamp?: string; readonly raw?: string; readonly sendInstead?: string }) => Effect.Effect<InteractionResult, EmulatorError>
  // faults
  readonly reconnect: (shard?: number) => void
  readonly invalidSession: (resumable: boolean, shard?: number) => void
  readonly requestHeartbeat: (shard?: number) => void
  readonly setAck: (ack: boolean) => void
  readonly terminate: (shard?: number) => void
  readonly close: (code: number, shard?: number) => void
  readonly script: (script: Script) => void
}

export const make = (options: Options = {}): Effect.Effect<DiscordEmulator, EmulatorError, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()
    const token = options.token ?? "emulator-token"
    let port = 0
    const gateway = new Gateway({
      token,
      heartbeatInterval: options.heartbeatInterval ?? 41_250,
      sendLimit: options.sendLimit ?? 120,
      maxConcurrency: options.maxConcurrency ?? 1,
      identifySpacing: options.identifySpacing ?? 5000,
      allowedPrivilegedIntents: options.allowedPrivilegedIntents ?? -1,
      sessionTtl: options.sessionTtl ?? 120_000,
      guilds: options.guilds ?? ["900"],
      closeAfterInvalidSession: options.closeAfterInvalidSession ?? false,
      now,
      resumeUrl: () => options.resumeUrl ?? `ws://127.0.0.1:${port}/resume`
    })
    const rest = new Rest({
      token,
      now,
      gatewayUrl: () => `ws://127.0.0.1:${port}/gateway`,
      shards: options.shards ?? 1,
      maxConcurrency: options.maxConcurrency ?? 1,
      sessionStartRemaining: options.sessionStartRemaining ?? 1000,
      bucketLimit: options.bucketLimit ?? 5,
      bucketWindow: options.bucketWindow ?? 5000,
      globalLimit: options.globalLimit ?? 50,
      bodyLimit: 8 * 1024 * 1024
    })
    const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 })
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1")
      if (!url.pathname.startsWith("/api/v10/")) {
        res.writeHead(404).end()
        return
      }
      rest.handle(req, res, url.pathname.slice("/api/v10".length))
    })
    server.on("upgrade", (req, socket, head) => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1")
      if (url.pathname !== "/gateway" && url.pathname !== "/resume") {
        socket.destroy()
        return
      }
      wss.handleUpgrade(req, socket, head, (ws) => gateway.accept(ws, url))
    })
    yield* Effect.acquireRelease(
      Effect.callback<void, EmulatorError>((resume) => {
        server.once("error", (cause) => resume(Effect.fail(new EmulatorError({ reason: "listen failed", cause }))))
        server.listen(0, "127.0.0.1", () => {
          port = (server.address() as AddressInfo).port
          resume(Effect.void)
        })
      }),
      () =>
        Effect.callback<void>((resume) => {
          for (const client of wss.clients) client.terminate()
          for (const res of rest.hanging) (res as ServerResponse).destroy()
          wss.close()
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )

    const keys = generateKeyPairSync("ed25519")
    const publicKey = (keys.publicKey.export({ format: "der", type: "spki" }) as Buffer).subarray(-32).toString("hex")
    const otherKey: KeyObject = createPrivateKey(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }))
    let interactionSeq = 0

    const interactionPayload = (fields: { channelId: string; name: string; options?: ReadonlyArray<{ name: string; type: number; value: unknown }> }) => {
      const id = rest.nextSnowflake()
      const itoken = `itoken-${++interactionSeq}`
      return {
        id,
        token: itoken,
        payload: {
          id,
          application_id: "1000",
          type: 2,
          token: itoken,
          version: 1,
          channel_id: fields.channelId,
          channel: { id: fields.channelId, type: 0 },
          user: { id: "2000", username: "user", discriminator: "0", global_name: null, avatar: null },
          data: { id: "3000", name: fields.name, type: 1, options: fields.options ?? [] },
          locale: "en-US",
          app_permissions: "0",
          entitlements: [],
          authorizing_integration_owners: {},
          attachment_size_limit: 8388608
        }
      }
    }

    const emulator: DiscordEmulator = {
      token,
      port,
      gatewayUrl: `ws://127.0.0.1:${port}/gateway`,
      resumeUrl: `ws://127.0.0.1:${port}/resume`,
      restUrl: `http://127.0.0.1:${port}/api/v10`,
      publicKey,
      gateway,
      rest,
      frames: () => gateway.frames,
      requests: () => rest.requests,
      messageCreate: (f) =>
        gateway.dispatch("MESSAGE_CREATE", {
          id: rest.nextSnowflake(),
          channel_id: f.channelId,
          ...(f.guildId === undefined ? {} : { guild_id: f.guildId }),
          author: { id: f.authorId ?? "2000", username: "user", discriminator: "0", global_name: null, avatar: null },
          content: f.content,
          timestamp: new Date(now()).toISOString(),
          edited_timestamp: null,
          tts: false,
          mention_everyone: false,
          mentions: [],
          mention_roles: [],
          attachments: [],
          embeds: [],
          pinned: false,
          type: 0
        }, f.shard),
      interactionCreate: (f) => {
        const i = interactionPayload(f)
        gateway.dispatch("INTERACTION_CREATE", i.payload, f.shard)
        return { id: i.id, token: i.token }
      },
      dispatch: (t, d, shard) => gateway.dispatch(t, d, shard),
      postInteraction: (url, body, o = {}) =>
        Effect.tryPromise({
          try: async (signal) => {
            const raw = o.raw ?? JSON.stringify(body)
            const timestamp = o.timestamp ?? String(Math.floor(now() / 1000))
            const signature = sign(null, Buffer.from(timestamp + raw), o.badSignature === true ? otherKey : keys.privateKey).toString("hex")
            const res = await fetch(url, {
              method: "POST",
              headers: { "content-type": "application/json", "x-signature-ed25519": signature, "x-signature-timestamp": timestamp },
              body: o.sendInstead ?? raw,
              signal
            })
            const text = await res.text()
            let parsed: unknown = text
            try {
              parsed = JSON.parse(text)
            } catch {
              // not JSON: keep the text
            }
            return { status: res.status, body: parsed }
          },
          catch: (cause) => new EmulatorError({ reason: "interaction POST failed", cause })
        }),
      reconnect: (shard) => gateway.sendOp(7, null, shard),
      invalidSession: (resumable, shard) => gateway.sendOp(9, resumable, shard),
      requestHeartbeat: (shard) => gateway.sendOp(1, null, shard),
      setAck: (ack) => {
        gateway.ack = ack
      },
      terminate: (shard) => gateway.terminate(shard),
      close: (code, shard) => gateway.close(code, shard),
      script: (s) => {
        rest.scripts.push(s)
      }
    }
    return emulator
  })

/** A signed-interaction body for tests: a slash command `name` in `channelId`. */
export const slashCommand = (fields: { readonly channelId: string; readonly name: string; readonly id?: string; readonly token?: string }) => ({
  id: fields.id ?? "7000",
  application_id: "1000",
  type: 2,
  token: fields.token ?? "itoken-http",
  version: 1,
  channel_id: fields.channelId,
  channel: { id: fields.channelId, type: 0 },
  user: { id: "2000", username: "user", discriminator: "0", global_name: null, avatar: null },
  data: { id: "3000", name: fields.name, type: 1, options: [] },
  locale: "en-US",
  app_permissions: "0",
  entitlements: [],
  authorizing_integration_owners: {},
  attachment_size_limit: 8388608
})
