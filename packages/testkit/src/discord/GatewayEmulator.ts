/**
 * GatewayEmulator: the Discord gateway's server side, on `ws`, for loopback tests.
 *
 * Speaks the v10 JSON protocol with sessions, sequence numbers and replay on resume, identify
 * concurrency buckets, the per-connection send limit (4008), payload checks (4002), auth and
 * intent checks (4003/4004/4005/4013/4014) and `zlib-stream`. Every fault a client must survive
 * can be produced on demand. It runs no timers: everything happens in `ws` callbacks or in the
 * test's calls, and time comes from the Effect `Clock` it was made with (a `TestClock` in tests).
 */
import { randomBytes } from "node:crypto"
import type { Socket } from "node:net"
import type * as zlib from "node:zlib"
import type { WebSocket } from "ws"
import * as ZlibStream from "./ZlibStream.ts"

const TEXT_FRAME = { binary: false }

export interface GatewayOptions {
  /** The bot token a client must present (without the `Bot ` prefix). */
  readonly token: string
  readonly heartbeatInterval: number
  /** Client events allowed per connection per 60 s before close 4008. */
  readonly sendLimit: number
  readonly maxConcurrency: number
  /** Minimum time between identifies of one bucket (Discord: 5000 ms; 0 turns the check off). */
  readonly identifySpacing: number
  /** Privileged intents the application may use (bits), others are 4014. */
  readonly allowedPrivilegedIntents: number
  /** How long a session survives a non-1000 close, in ms. */
  readonly sessionTtl: number
  /** Guilds announced in READY and sent as GUILD_CREATE. */
  readonly guilds: ReadonlyArray<string>
  /** Close with 1000 right after an op 9 `false`, as the real gateway often does. */
  readonly closeAfterInvalidSession: boolean
  readonly now: () => number
  readonly resumeUrl: () => string
}

/** A frame as the emulator saw or sent it. */
export interface Frame {
  readonly at: number
  readonly connection: number
  readonly direction: "in" | "out"
  readonly op: number | undefined
  readonly t: string | null | undefined
  readonly s: number | null | undefined
  readonly d: unknown
}

export interface Session {
  readonly id: string
  readonly shard: readonly [number, number]
  readonly intents: number
  seq: number
  readonly log: Array<{ readonly s: number; readonly raw: string }>
  connection: Connection | undefined
  /** When the last connection closed resumably; the session expires `sessionTtl` later. */
  detachedAt: number | undefined
  invalid: boolean
}

export interface Connection {
  readonly id: number
  readonly ws: WebSocket
  readonly path: string
  readonly deflate: zlib.Deflate | undefined
  session: Session | undefined
  identified: boolean
  /** Times of client events in the current 60 s window (for 4008). */
  readonly received: Array<number>
  heartbeats: number
  closed: boolean
  closeCode: number | undefined
}

const PRIVILEGED = (1 << 1) | (1 << 8) | (1 << 15)
const ALL_INTENTS = (1 << 26) - 1
const LOG_LIMIT = 10_000
const FRAME_LIMIT = 50_000

export class Gateway {
  readonly options: GatewayOptions
  readonly sessions = new Map<string, Session>()
  readonly connections = new Set<Connection>()
  readonly frames: Array<Frame> = []
  /** Whether heartbeats are acknowledged (turn off to make a zombie connection). */
  ack = true
  /** When false, dispatches are recorded and sequenced but not written (a stalled link). */
  deliver = true
  /** When true, RESUME gets no answer at all (the client's handshake deadline must fire). */
  swallowResumes = false
  /** When false, new connections get no HELLO (the client's HELLO deadline must fire). */
  hello = true
  /** When set, new connections are closed with this code at once (an outage). */
  refuseWith: number | undefined = undefined
  identifies = 0
  resumes = 0
  readonly #lastIdentify = new Map<number, number>()
  #nextConnection = 1
  constructor(options: GatewayOptions) {
    this.options = options
  }

  accept(ws: WebSocket, url: URL): void {
    const compress = url.searchParams.get("compress")
    if (compress !== null && compress !== "zlib-stream") {
      ws.close(4000, "unsupported compression")
      return
    }
    const conn: Connection = {
      id: this.#nextConnection++,
      ws,
      path: url.pathname,
      deflate: compress === "zlib-stream" ? ZlibStream.makeDeflate() : undefined,
      session: undefined,
      identified: false,
      received: [],
      heartbeats: 0,
      closed: false,
      closeCode: undefined
    }
    this.connections.add(conn)
    ws.on("message", (data, isBinary) => this.#onMessage(conn, data as Buffer, isBinary))
    ws.on("close", (code) => this.#onClose(conn, code))
    ws.on("error", () => {})
    if (this.refuseWith !== undefined) return this.#closeConn(conn, this.refuseWith, "refused")
    if (this.hello) this.#send(conn, { op: 10, d: { heartbeat_interval: this.options.heartbeatInterval } })
  }

  // ---- server-side actions, on demand --------------------------------------------------------

  /** Dispatches an event to the session of `shard` (all sessions when omitted); returns the seqs. */
  dispatch(t: string, d: unknown, shard?: number): Array<number> {
    const out: Array<number> = []
    for (const session of this.sessions.values()) {
      if (session.invalid || (shard !== undefined && session.shard[0] !== shard)) continue
      if (this.#expired(session)) continue
      out.push(this.#dispatchTo(session, t, d))
    }
    return out
  }

  /**
   * Runs `f` with the sockets of all live connections corked, so what it sends leaves in one write
   * per connection. For load generators: the emulator's cost per frame then does not depend on how
   * fast the client happens to read (an uncorked socket costs a system call per frame whenever the
   * client keeps up, and batches when it falls behind).
   */
  corked<A>(f: () => A): A {
    const sockets = this.live().map(socketOf)
    for (const socket of sockets) socket?.cork()
    try {
      return f()
    } finally {
      for (const socket of sockets) socket?.uncork()
    }
  }

  /**
   * Resolves once every live connection's socket that is over its high-water mark right now has
   * handed all it buffered to the OS (its `drain` event), or has closed; at once when none is over
   * it. A load generator awaits this between bursts, as a real gateway's bounded send buffers make
   * it wait: without it, an in-process emulator piles up frames for a client that reads slower
   * than it writes (tens of MB in the dispatch benchmark), and collecting that pile costs the
   * process under test, slowing its client further. What the OS holds (a few MB on loopback) the
   * client may not have read yet.
   */
  whenDrained(): Promise<void> {
    // (`writableNeedDrain` is false for an ending or destroyed socket, whose 'close' may be past)
    const full = this.live().map(socketOf).filter((socket) => socket?.writableNeedDrain === true)
    return Promise.all(full.map((socket) =>
      new Promise<void>((resolve) => {
        const done = () => {
          socket!.off("drain", done)
          socket!.off("close", done)
          resolve()
        }
        socket!.on("drain", done)
        socket!.on("close", done)
      })
    )).then(() => undefined)
  }

  /** Sends a raw op (7, 9, 1 ...) to the live connections of `shard` (all when omitted). */
  sendOp(op: number, d: unknown, shard?: number): void {
    for (const conn of this.live(shard)) {
      this.#send(conn, { op, d })
      if (op === 9 && d === false) this.#invalidate(conn)
    }
  }

  /** Writes bytes as they are (no JSON, no compression): for hostile-input tests. */
  sendRaw(data: string | Buffer, shard?: number): void {
    for (const conn of this.live(shard)) conn.ws.send(data)
  }

  close(code: number, shard?: number, reason = ""): void {
    for (const conn of this.live(shard)) this.#closeConn(conn, code, reason)
  }

  /** Drops the TCP connection without a close frame. */
  terminate(shard?: number): void {
    for (const conn of this.live(shard)) {
      conn.closed = true
      conn.ws.terminate()
    }
  }

  /** Open connections (optionally only those whose session belongs to `shard`). */
  live(shard?: number): Array<Connection> {
    return [...this.connections].filter((c) =>
      !c.closed && (shard === undefined || (c.session !== undefined && c.session.shard[0] === shard))
    )
  }

  // ---- protocol ------------------------------------------------------------------------------

  #record(conn: Connection, direction: "in" | "out", payload: { op?: number | undefined; t?: string | null | undefined; s?: number | null | undefined; d?: unknown }) {
    if (this.frames.length >= FRAME_LIMIT) this.frames.splice(0, FRAME_LIMIT / 10)
    this.frames.push({ at: this.options.now(), connection: conn.id, direction, op: payload.op, t: payload.t, s: payload.s, d: payload.d })
  }

  #write(conn: Connection, raw: string) {
    if (conn.closed || conn.ws.readyState !== 1) return
    // Encoded here, sent as a text frame: a string would be copied into memory that the socket
    // allocates per write, and how often that memory is fresh (page faults) depends on how fast
    // the client reads. A Buffer is written as it is, so a load generator costs the same per frame
    // whichever client is under test.
    if (conn.deflate === undefined) conn.ws.send(Buffer.from(raw), TEXT_FRAME)
    else conn.ws.send(ZlibStream.processSync(conn.deflate, Buffer.from(raw)))
  }

  #send(conn: Connection, payload: { op: number; d: unknown }) {
    this.#record(conn, "out", payload)
    this.#write(conn, JSON.stringify({ t: null, s: null, op: payload.op, d: payload.d }))
  }

  #dispatchTo(session: Session, t: string, d: unknown): number {
    const s = ++session.seq
    const raw = JSON.stringify({ t, s, op: 0, d })
    session.log.push({ s, raw })
    if (session.log.length > LOG_LIMIT) session.log.splice(0, LOG_LIMIT / 10)
    const conn = session.connection
    if (conn !== undefined && !conn.closed && this.deliver) {
      this.#record(conn, "out", { op: 0, t, s, d })
      this.#write(conn, raw)
    }
    return s
  }

  #closeConn(conn: Connection, code: number, reason: string) {
    if (conn.closed) return
    conn.closed = true
    conn.closeCode = code
    this.#record(conn, "out", { op: undefined, d: { close: code, reason } })
    // a close we initiate keeps the session resumable; only the client's 1000/1001 ends it
    this.#detach(conn, 4000)
    conn.ws.close(code, reason)
  }

  #invalidate(conn: Connection) {
    if (conn.session !== undefined) conn.session.invalid = true
    if (this.options.closeAfterInvalidSession) this.#closeConn(conn, 1000, "invalid session")
  }

  #detach(conn: Connection, code: number) {
    const session = conn.session
    if (session === undefined || session.connection !== conn) return
    session.connection = undefined
    session.detachedAt = this.options.now()
    if (code === 1000 || code === 1001) session.invalid = true
  }

  #expired(session: Session): boolean {
    return session.connection === undefined && session.detachedAt !== undefined &&
      this.options.now() - session.detachedAt > this.options.sessionTtl
  }

  #onClose(conn: Connection, code: number) {
    const wasClosed = conn.closed
    conn.closed = true
    if (conn.closeCode === undefined) conn.closeCode = code
    this.connections.delete(conn)
    if (!wasClosed) {
      this.#record(conn, "in", { op: undefined, d: { close: code } })
      this.#detach(conn, code)
    }
  }

  #onMessage(conn: Connection, data: Buffer, isBinary: boolean) {
    if (conn.closed) return
    if (data.byteLength > 4096) return this.#closeConn(conn, 4002, "Error while decoding payload.")
    const now = this.options.now()
    const window = conn.received
    while (window.length > 0 && now - window[0]! >= 60_000) window.shift()
    window.push(now)
    if (window.length > this.options.sendLimit) return this.#closeConn(conn, 4008, "Rate limited.")
    let payload: { op?: unknown; d?: unknown }
    try {
      if (isBinary) throw new Error("binary")
      payload = JSON.parse(data.toString("utf8"))
      if (typeof payload !== "object" || payload === null || typeof payload.op !== "number") throw new Error("shape")
    } catch {
      return this.#closeConn(conn, 4002, "Error while decoding payload.")
    }
    const op = payload.op as number
    this.#record(conn, "in", { op, d: op === 2 || op === 6 ? redactToken(payload.d) : payload.d })
    switch (op) {
      case 1:
        conn.heartbeats++
        if (this.ack) this.#send(conn, { op: 11, d: null })
        return
      case 2:
        return this.#identify(conn, payload.d)
      case 6:
        return this.#resume(conn, payload.d)
      case 3:
      case 4:
      case 8:
        if (!conn.identified) return this.#closeConn(conn, 4003, "Not authenticated.")
        return
      default:
        if (!conn.identified) return this.#closeConn(conn, 4003, "Not authenticated.")
        return this.#closeConn(conn, 4001, "Unknown opcode.")
    }
  }

  #identify(conn: Connection, d: unknown) {
    if (conn.identified) return this.#closeConn(conn, 4005, "Already authenticated.")
    const data = (typeof d === "object" && d !== null ? d : {}) as Record<string, unknown>
    if (data.token !== this.options.token && data.token !== `Bot ${this.options.token}`) {
      return this.#closeConn(conn, 4004, "Authentication failed.")
    }
    const intents = data.intents
    if (typeof intents !== "number" || !Number.isInteger(intents) || intents < 0 || (intents & ~ALL_INTENTS) !== 0) {
      return this.#closeConn(conn, 4013, "Invalid intent(s).")
    }
    if ((intents & PRIVILEGED & ~this.options.allowedPrivilegedIntents) !== 0) {
      return this.#closeConn(conn, 4014, "Disallowed intent(s).")
    }
    const shardField = data.shard
    const shard: readonly [number, number] = Array.isArray(shardField) ? [Number(shardField[0]), Number(shardField[1])] : [0, 1]
    if (!(shard[1]! >= 1 && shard[0]! >= 0 && shard[0]! < shard[1]!)) return this.#closeConn(conn, 4010, "Invalid shard.")
    const now = this.options.now()
    const bucket = shard[0]! % this.options.maxConcurrency
    const last = this.#lastIdentify.get(bucket)
    if (last !== undefined && now - last < this.options.identifySpacing) {
      this.#send(conn, { op: 9, d: false })
      if (this.options.closeAfterInvalidSession) this.#closeConn(conn, 1000, "identify rate limited")
      return
    }
    this.#lastIdentify.set(bucket, now)
    this.identifies++
    conn.identified = true
    const session: Session = {
      id: randomBytes(16).toString("hex"),
      shard,
      intents,
      seq: 0,
      log: [],
      connection: conn,
      detachedAt: undefined,
      invalid: false
    }
    this.sessions.set(session.id, session)
    conn.session = session
    const guilds = this.options.guilds.filter((_, i) => guildShard(i, shard))
    this.#dispatchTo(session, "READY", {
      v: 10,
      user: { id: "1000", username: "emulated-bot", discriminator: "0", global_name: null, avatar: null, bot: true },
      guilds: guilds.map((id) => ({ id, unavailable: true })),
      session_id: session.id,
      resume_gateway_url: this.options.resumeUrl(),
      shard,
      application: { id: "1000", flags: 0 }
    })
    for (const id of guilds) this.#dispatchTo(session, "GUILD_CREATE", { id, name: `guild ${id}`, unavailable: false, channels: [], members: [] })
  }

  #resume(conn: Connection, d: unknown) {
    if (this.swallowResumes) return
    if (conn.identified) return this.#closeConn(conn, 4005, "Already authenticated.")
    const data = (typeof d === "object" && d !== null ? d : {}) as Record<string, unknown>
    if (data.token !== this.options.token && data.token !== `Bot ${this.options.token}`) {
      return this.#closeConn(conn, 4004, "Authentication failed.")
    }
    const session = typeof data.session_id === "string" ? this.sessions.get(data.session_id) : undefined
    if (session === undefined || session.invalid || this.#expired(session)) {
      this.#send(conn, { op: 9, d: false })
      if (this.options.closeAfterInvalidSession) this.#closeConn(conn, 1000, "invalid session")
      return
    }
    const seq = typeof data.seq === "number" ? data.seq : -1
    const oldest = session.log.length > 0 ? session.log[0]!.s - 1 : session.seq
    if (seq < oldest || seq > session.seq) return this.#closeConn(conn, 4007, "Invalid seq.")
    if (session.connection !== undefined && session.connection !== conn) {
      const old = session.connection
      session.connection = undefined
      this.#closeConn(old, 4000, "session resumed elsewhere")
    }
    this.resumes++
    conn.identified = true
    conn.session = session
    session.connection = conn
    session.detachedAt = undefined
    for (const entry of session.log) {
      if (entry.s <= seq) continue
      const parsed = JSON.parse(entry.raw) as { t: string; d: unknown }
      this.#record(conn, "out", { op: 0, t: parsed.t, s: entry.s, d: parsed.d })
      this.#write(conn, entry.raw)
    }
    this.#dispatchTo(session, "RESUMED", {})
  }
}

/** The TCP socket under a connection: `ws` keeps it private (`_socket`) and has no cork or drain of its own. */
const socketOf = (conn: Connection): Socket | undefined => (conn.ws as unknown as { _socket?: Socket })._socket

const guildShard = (_index: number, _shard: readonly [number, number]) => _index % _shard[1] === _shard[0]

const redactToken = (d: unknown): unknown =>
  typeof d === "object" && d !== null ? { ...(d as Record<string, unknown>), token: "<redacted>" } : d
