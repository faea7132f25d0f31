import { is, Param, Placeholder, type SQL } from 'drizzle-orm'
import type { Db } from './client.js'
import { drizzleOf } from './transaction.js'

/** Statement text and its parameters, as postgres.js takes them. */
export interface BoundQuery {
  sql: string
  params: unknown[]
}

/** Where each parameter of a compiled statement comes from: a value given at run time, or a constant. */
type Slot = { name: string } | { constant: unknown }

/**
 * A hot statement (a claim, a settlement, a heartbeat), compiled to text once per process and then
 * only bound to values. Drizzle renders a `sql` template anew on every run, which on the worker's
 * path cost about a tenth of its CPU per batch; the text never changes, only the values, so they
 * are `sql.placeholder(name)`s filled by `bind`.
 */
export class Statement<Values extends Record<string, unknown>> {
  private compiled?: { sql: string; slots: Slot[] }

  constructor(private readonly query: SQL) {}

  bind(db: Db, values: Values): BoundQuery {
    this.compiled ??= this.compile(db)
    const { sql, slots } = this.compiled
    const params = new Array<unknown>(slots.length)
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as Slot
      params[i] = 'name' in slot ? values[slot.name] : slot.constant
    }
    return { sql, params }
  }

  private compile(db: Db): { sql: string; slots: Slot[] } {
    const { sql, params } = drizzleOf(db).dialect.sqlToQuery(this.query)
    const slots = params.map((param): Slot => {
      if (is(param, Placeholder)) return { name: param.name }
      if (is(param, Param) && is(param.value, Placeholder)) {
        throw new TypeError(`placeholder ${param.value.name}: use sql.placeholder directly, not inside sql.param`)
      }
      return { constant: param }
    })
    return { sql, slots }
  }
}
