/**
 * fiberbot CLI as a library: the command, the scaffolder and its templates.
 */
export * as Cli from "./Cli.ts"
export * as Inspect from "./Inspect.ts"
export * as Name from "./Name.ts"
export * as Scaffold from "./Scaffold.ts"
export * as Templates from "./Templates.ts"
