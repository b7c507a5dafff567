/**
 * RestEmulator: the part of Discord's HTTP API a bot uses, for loopback tests.
 *
 * `/gateway/bot`, messages (JSON and multipart), reactions, interaction callbacks and webhook
 * followups, with `X-RateLimit-*` headers from per-route buckets, a global limit, scripted
 * responses (429s, 5xx, hangs) and a record of every request. Synchronous request handling, no
 * timers; time comes from the `now` it is given.
 */
import type { IncomingMessage, ServerResponse } from "node:http"

export interface RestOptions {
  readonly token: string
  readonly now: () => number
  readonly gatewayUrl: () => string
  readonly shards: number
  readonly maxConcurrency: number
  readonly sessionStartRemaining: number
  /** Requests per route bucket per `bucketWindow` ms. */
  readonly bucketLimit: number
  readonly bucketWindow: number
  /** Requests per second across routes (interaction callbacks excluded). */
  readonly globalLimit: number
  readonly bodyLimit: number
}

export interface RecordedRequest {
  readonly at: number
  readonly method: string
  readonly path: string
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** Parsed JSON body, or `payload_json` of a multipart body. */
  readonly body: unknown
  /** File names of multipart attachments. */
  readonly files: ReadonlyArray<string>
}

/** A response to give instead of the normal one, for matching requests. */
export interface Script {
  readonly method?: string | undefined
  readonly path: RegExp
  readonly status: number
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** How many matching requests get it (default 1). */
  times?: number | undefined
  /** Never answer (the client's request timeout must fire). */
  readonly hang?: boolean | undefined
}

export interface StoredMessage {
  readonly id: string
  readonly channel_id: string
  content: string
  readonly reactions: Array<string>
  deleted: boolean
}

interface Bucket {
  windowStart: number
  count: number
}

const MAJOR = /^\/(channels|guilds|webhooks)\/(\d+)(\/[^/]+)?/

/** The bucket template of a path: ids collapsed except the major parameter. */
const routeOf = (method: string, path: string): { template: string; major: string } => {
  const m = MAJOR.exec(path)
  const major = m === null ? "global" : m[3] !== undefined && m[1] === "webhooks" ? `${m[2]}${m[3]}` : m[2]!
  const template = path
    .replace(/\/reactions\/.*/, "/reactions/:reaction")
    .replace(/\/\d{1,20}/g, "/:id")
    .replace(/\/webhooks\/:id\/[^/]+/, "/webhooks/:id/:token")
    .replace(/\/interactions\/:id\/[^/]+/, "/interactions/:id/:token")
  return { template: `${method} ${template}`, major }
}

export class Rest {
  readonly options: RestOptions
  readonly requests: Array<RecordedRequest> = []
  readonly messages = new Map<string, StoredMessage>()
  /** Interaction callbacks, webhook followups and edits, in order. */
  readonly interactionResponses: Array<{ readonly kind: "callback" | "followup" | "edit"; readonly path: string; readonly body: unknown }> = []
  readonly scripts: Array<Script> = []
  readonly #buckets = new Map<string, Bucket>()
  #global = { windowStart: 0, count: 0 }
  #nextId = 5_000_000_000_000_000
  rateLimited = 0
  /** Pending responses of `hang` scripts, answered when the emulator closes. */
  readonly hanging = new Set<ServerResponse>()
  constructor(options: RestOptions) {
    this.options = options
  }

  nextSnowflake(): string {
    return String(this.#nextId++)
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    const chunks: Array<Buffer> = []
    let size = 0
    let tooLarge = false
    req.on("data", (c: Buffer) => {
      size += c.byteLength
      if (size > this.options.bodyLimit) tooLarge = true
      else chunks.push(c)
    })
    req.on("end", () => {
      if (tooLarge) return this.#reply(req, res, path, 413, { message: "Request entity too large", code: 40005 }, {}, undefined, [])
      this.#route(req, res, path, Buffer.concat(chunks))
    })
    req.on("error", () => {})
  }

  #reply(req: IncomingMessage, res: ServerResponse, path: string, status: number, body: unknown, headers: Record<string, string>, reqBody: unknown, files: ReadonlyArray<string>) {
    const recordedHeaders: Record<string, string> = {}
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string") recordedHeaders[k] = k === "authorization" ? "<redacted>" : v
    }
    this.requests.push({ at: this.options.now(), method: req.method ?? "GET", path, status, headers: recordedHeaders, body: reqBody, files })
    if (status === 429) this.rateLimited++
    if (body === undefined) {
      res.writeHead(status, headers)
      res.end()
      return
    }
    res.writeHead(status, { "content-type": "application/json", ...headers })
    res.end(JSON.stringify(body))
  }

  #route(req: IncomingMessage, res: ServerResponse, path: string, raw: Buffer) {
    const method = req.method ?? "GET"
    const { body, files, bad } = parseBody(req.headers["content-type"], raw)
    const reply = (status: number, out: unknown, headers: Record<string, string> = {}) =>
      this.#reply(req, res, path, status, out, headers, body, files)
    if (bad) return reply(400, { message: "Invalid Form Body", code: 50109 })

    const isInteraction = /^\/interactions\/\d+\/[^/]+\/callback$/.test(path)
    if (!isInteraction && !path.startsWith("/webhooks/") && req.headers.authorization !== `Bot ${this.options.token}`) {
      return reply(401, { message: "401: Unauthorized", code: 0 })
    }

    const script = this.scripts.find((s) => s.path.test(path) && (s.method === undefined || s.method === method))
    if (script !== undefined) {
      script.times = (script.times ?? 1) - 1
      if (script.times <= 0) this.scripts.splice(this.scripts.indexOf(script), 1)
      if (script.hang === true) {
        this.hanging.add(res)
        res.on("close", () => this.hanging.delete(res))
        return
      }
      return reply(script.status, script.body ?? (script.status === 429 ? { message: "You are being rate limited.", retry_after: 1, global: false } : { message: "scripted" }), { ...script.headers })
    }

    const now = this.options.now()
    const headers: Record<string, string> = {}
    if (!isInteraction) {
      if (now - this.#global.windowStart >= 1000) this.#global = { windowStart: now, count: 0 }
      if (++this.#global.count > this.options.globalLimit) {
        const retry = (this.#global.windowStart + 1000 - now) / 1000
        return reply(429, { message: "You are being rate limited.", retry_after: retry, global: true }, {
          "retry-after": String(Math.ceil(retry)),
          "x-ratelimit-global": "true",
          "x-ratelimit-scope": "global"
        })
      }
      const route = routeOf(method, path)
      const key = `${route.template}|${route.major}`
      let bucket = this.#buckets.get(key)
      if (bucket === undefined || now - bucket.windowStart >= this.options.bucketWindow) {
        bucket = { windowStart: now, count: 0 }
        this.#buckets.set(key, bucket)
      }
      bucket.count++
      const resetAfter = (bucket.windowStart + this.options.bucketWindow - now) / 1000
      headers["x-ratelimit-limit"] = String(this.options.bucketLimit)
      headers["x-ratelimit-remaining"] = String(Math.max(0, this.options.bucketLimit - bucket.count))
      headers["x-ratelimit-reset"] = String((bucket.windowStart + this.options.bucketWindow) / 1000)
      headers["x-ratelimit-reset-after"] = resetAfter.toFixed(3)
      headers["x-ratelimit-bucket"] = bucketHash(route.template)
      if (bucket.count > this.options.bucketLimit) {
        return reply(429, { message: "You are being rate limited.", retry_after: resetAfter, global: false }, {
          ...headers,
          "retry-after": String(Math.ceil(resetAfter)),
          "x-ratelimit-scope": "user"
        })
      }
    }
    const match = (re: RegExp) => re.exec(path)
    let m: RegExpExecArray | null
    if (method === "GET" && path === "/gateway/bot") {
      return reply(200, {
        url: this.options.gatewayUrl(),
        shards: this.options.shards,
        session_start_limit: { total: 1000, remaining: this.options.sessionStartRemaining, reset_after: 14_400_000, max_concurrency: this.options.maxConcurrency }
      }, headers)
    }
    if (method === "GET" && path === "/gateway") return reply(200, { url: this.options.gatewayUrl() }, headers)
    if ((m = match(/^\/channels\/(\d+)\/messages$/)) && method === "POST") {
      const content = typeof (body as { content?: unknown })?.content === "string" ? (body as { content: string }).content : ""
      const msg: StoredMessage = { id: this.nextSnowflake(), channel_id: m[1]!, content, reactions: [], deleted: false }
      this.messages.set(msg.id, msg)
      return reply(200, messageJson(msg, files), headers)
    }
    if ((m = match(/^\/channels\/(\d+)\/messages\/(\d+)$/))) {
      const msg = this.messages.get(m[2]!)
      if (msg === undefined || msg.deleted || msg.channel_id !== m[1]) return reply(404, { message: "Unknown Message", code: 10008 }, headers)
      if (method === "PATCH") {
        const content = (body as { content?: unknown })?.content
        if (typeof content === "string") msg.content = content
        return reply(200, messageJson(msg, files), headers)
      }
      if (method === "DELETE") {
        msg.deleted = true
        return reply(204, undefined, headers)
      }
      if (method === "GET") return reply(200, messageJson(msg, []), headers)
    }
    if ((m = match(/^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/))) {
      const msg = this.messages.get(m[2]!)
      if (msg === undefined || msg.deleted) return reply(404, { message: "Unknown Message", code: 10008 }, headers)
      const emoji = decodeURIComponent(m[3]!)
      if (method === "PUT") {
        if (!msg.reactions.includes(emoji)) msg.reactions.push(emoji)
        return reply(204, undefined, headers)
      }
      if (method === "DELETE") {
        msg.reactions.splice(msg.reactions.indexOf(emoji), 1)
        return reply(204, undefined, headers)
      }
    }
    if (isInteraction && method === "POST") {
      this.interactionResponses.push({ kind: "callback", path, body })
      return reply(204, undefined)
    }
    if ((m = match(/^\/webhooks\/(\d+)\/([^/]+)$/)) && method === "POST") {
      this.interactionResponses.push({ kind: "followup", path, body })
      const msg: StoredMessage = { id: this.nextSnowflake(), channel_id: "0", content: String((body as { content?: unknown })?.content ?? ""), reactions: [], deleted: false }
      return reply(200, messageJson(msg, files), headers)
    }
    if ((m = match(/^\/webhooks\/(\d+)\/([^/]+)\/messages\/([^/]+)$/)) && method === "PATCH") {
      this.interactionResponses.push({ kind: "edit", path, body })
      const msg: StoredMessage = { id: this.nextSnowflake(), channel_id: "0", content: String((body as { content?: unknown })?.content ?? ""), reactions: [], deleted: false }
      return reply(200, messageJson(msg, files), headers)
    }
    return reply(404, { message: "404: Not Found", code: 0 }, headers)
  }
}

const bucketHash = (template: string) => {
  let h = 2166136261
  for (let i = 0; i < template.length; i++) h = Math.imul(h ^ template.charCodeAt(i), 16777619)
  return (h >>> 0).toString(16)
}

const messageJson = (msg: StoredMessage, files: ReadonlyArray<string>) => ({
  id: msg.id,
  channel_id: msg.channel_id,
  content: msg.content,
  author: { id: "1000", username: "emulated-bot", discriminator: "0", global_name: null, avatar: null, bot: true },
  attachments: files.map((filename, i) => ({ id: String(i), filename, size: 0, url: `http://attachments.invalid/${filename}`, proxy_url: "" })),
  embeds: [],
  mentions: [],
  mention_roles: [],
  mention_everyone: false,
  pinned: false,
  tts: false,
  type: 0,
  timestamp: new Date(0).toISOString(),
  edited_timestamp: null
})

/** JSON or multipart (`payload_json` + `files[n]`); anything else is "bad". */
const parseBody = (contentType: string | undefined, raw: Buffer): { body: unknown; files: Array<string>; bad: boolean } => {
  if (raw.byteLength === 0) return { body: undefined, files: [], bad: false }
  if (contentType?.startsWith("application/json")) {
    try {
      return { body: JSON.parse(raw.toString("utf8")), files: [], bad: false }
    } catch {
      return { body: undefined, files: [], bad: true }
    }
  }
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType ?? "")
  if (contentType?.startsWith("multipart/form-data") && boundary !== null) {
    const sep = `--${boundary[1] ?? boundary[2]}`
    const parts = raw.toString("latin1").split(sep).slice(1, -1)
    let body: unknown = undefined
    const files: Array<string> = []
    for (const part of parts) {
      const [head = "", ...rest] = part.split("\r\n\r\n")
      const content = rest.join("\r\n\r\n").replace(/\r\n$/, "")
      const name = /name="([^"]+)"/.exec(head)?.[1]
      const filename = /filename="([^"]+)"/.exec(head)?.[1]
      if (name === "payload_json") {
        try {
          body = JSON.parse(Buffer.from(content, "latin1").toString("utf8"))
        } catch {
          return { body: undefined, files: [], bad: true }
        }
      } else if (filename !== undefined) files.push(filename)
    }
    return { body, files, bad: false }
  }
  return { body: undefined, files: [], bad: true }
}
