// Not built yet: see packages/adapters/README.md.
export {}
