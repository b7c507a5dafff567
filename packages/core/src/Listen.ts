/**
 * Listen: puts a node `net.Server` (HTTP, WebSocket, webhook) on a port as an effect.
 *
 * `server.listen` reports a failure (the port in use, an address not this host's) as an 'error'
 * event, and an 'error' without a listener is thrown: the process ends. Here a failure to listen
 * is a typed `ListenError`, and once listening, later errors of the server (an accept failing when
 * the process is out of file descriptors) go to `afterwards` for the caller to log: the server
 * keeps listening, as node's own accept loop does.
 */
import { Data, Effect } from "effect"
import type { AddressInfo, Server } from "node:net"

export class ListenError extends Data.TaggedError("ListenError")<{
  readonly host: string
  readonly port: number
  /** The system's code (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES` ...), or "unknown". */
  readonly code: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cannot listen on ${this.host}:${this.port}: ${this.code}${this.code === "EADDRINUSE" ? " (the port is in use)" : ""}: ${detail}`
  }
}

/** Listens on `port` (0: one from the OS) and `host`; answers the address bound. */
export const listen = (
  server: Server,
  options: { readonly port: number; readonly host: string },
  afterwards: (error: NodeJS.ErrnoException) => void
): Effect.Effect<AddressInfo, ListenError> =>
  Effect.callback<AddressInfo, ListenError>((resume) => {
    const { port, host } = options
    const onError = (e: NodeJS.ErrnoException) => {
      server.off("listening", onListening)
      resume(Effect.fail(new ListenError({ host, port, code: e.code ?? "unknown", cause: e })))
    }
    const onListening = () => {
      server.off("error", onError)
      server.on("error", afterwards)
      resume(Effect.succeed(server.address() as AddressInfo))
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(port, host)
  })
