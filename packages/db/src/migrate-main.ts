import { migrateDatabase } from './migrate.js'

// The `migrate` one-shot of docker compose and `pnpm db:migrate`.
const url = process.env.DATABASE_URL
if (!url) {
  console.error('DATABASE_URL is required: the PostgreSQL database to migrate')
  process.exit(2)
}
await migrateDatabase(url)
console.log(JSON.stringify({ level: 30, time: Date.now(), msg: 'database migrated' }))
