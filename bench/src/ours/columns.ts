import { orderColumnName } from '@postgres-queue/db'
import type postgres from 'postgres'

/**
 * An insert's column list for the orders table, each name as the db package maps schema.ts's key:
 * the bench's plain-SQL inserts follow a renamed column, and one dropped from the schema fails to
 * compile rather than a measure failing at run time. (Not postgres.js's `sql(names)` helper: inside
 * a CTE it reads the `as` before it and builds something else.)
 */
export function orderColumns(sql: postgres.Sql, ...keys: Parameters<typeof orderColumnName>[0][]) {
  return sql.unsafe(keys.map((key) => `"${orderColumnName(key).replaceAll('"', '""')}"`).join(', '))
}
