// postgres.js, the driver, with this repository's fixes (patches/postgres@3.4.9.patch: connection
// loss must fail a query, never crash the process, hang a reservation or run a transaction's next
// statement outside it). No released version carries them yet, so `pnpm build` bundles the patched
// copy into dist/driver.js: an install of @postgres-queue/db from its package runs the same driver
// the tests prove, whatever postgres version npm resolves for drizzle-orm's own import of it.
export { default } from 'postgres'
