/**
 * @fiberbot/testkit/discord: a loopback Discord gateway + REST emulator with fault injection.
 */
export * as DiscordEmulator from "./Emulator.ts"
export { Gateway } from "./GatewayEmulator.ts"
export { Rest } from "./RestEmulator.ts"
