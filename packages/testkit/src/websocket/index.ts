/**
 * @fiberbot/testkit/websocket: a WebSocket load generator in its own process.
 *
 * `LoadGen.spawn(options)` starts `load-process.ts` as a child process (loopback only, bounded in
 * connections and time) and gives back its progress lines and its final result. The child is
 * owned by the caller's scope: closing the scope kills it if it is still running.
 */
export * as LoadGen from "./LoadGen.ts"
