import { sql } from 'drizzle-orm'
import { PgDialect } from 'drizzle-orm/pg-core'
import { keyHeadStatus } from '../schema.js'
import { NewOrderBatchBody, NewOrderBody, NO_CONTROL_CHARACTERS, schedule } from './rules.js'

// The SQL side of submission: functions in the queue's schema that take orders as jsonb and store
// them as POST /orders does, for a team's own transaction (README, "Submit inside your own
// transaction"). Their rules are not written here: the checks are generated from the same TypeBox
// schemas the api validates with (rules.ts), keyword by keyword; a keyword this generator does not
// know stops it, so a new kind of rule cannot be left out of SQL unnoticed.
// `pnpm db:submission` writes the result as a migration; submission.test.ts fails while the latest
// one differs from what the rules generate now.

/** A JSON Schema as TypeBox builds it: the keywords the order schemas use. */
interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer'
  properties?: Record<string, Schema>
  required?: readonly string[]
  additionalProperties?: boolean
  items?: Schema
  minItems?: number
  maxItems?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
  minimum?: number
  maximum?: number
  enum?: readonly string[]
  default?: unknown
  description?: string
}

/** Keywords the generator understands; `description` documents, `default` is filled (defaultsOf). */
const KNOWN = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'format',
  'minimum',
  'maximum',
  'enum',
  'default',
  'description',
])

/**
 * The schemas' patterns, as PostgreSQL regular expressions. NUL and unpaired surrogates cannot be in
 * PostgreSQL text or jsonb at all (the cast to jsonb refuses them), so only the other controls remain.
 */
const PATTERNS: Record<string, string> = {
  [NO_CONTROL_CHARACTERS]: '^[^\\x01-\\x1f\\x7f-\\x9f]+$',
}

/** Whether the order `head` is its key's head (schema.ts, keyHeadStatus): the unique index's predicate, as text. */
const HEAD_STATUS = new PgDialect().sqlToQuery(keyHeadStatus(sql.raw('head.status'), sql.raw('head.skipped_at'))).sql

const literal = (value: string) => `'${value.replaceAll("'", "''")}'`

/** Statements that return the first problem of the jsonb value `value`, at JSON pointer `path`. */
class Checks {
  private readonly lines: string[] = []
  /** Loop variables the checks declare. */
  readonly variables: string[] = []

  constructor(private readonly indent = '  ') {}

  text(): string {
    return this.lines.join('\n')
  }

  private line(text: string): void {
    this.lines.push(`${this.indent}${text}`)
  }

  private fail(condition: string, path: string, message: string): void {
    this.line(`if ${condition} then return ${path} || ${literal(` ${message}`)}; end if;`)
  }

  add(schema: Schema, value: string, path: string, depth = 0): void {
    for (const keyword of Object.keys(schema)) {
      if (!KNOWN.has(keyword)) throw new Error(`submission SQL: no translation for the keyword ${keyword}`)
    }
    if (schema.enum !== undefined) {
      this.fail(`jsonb_typeof(${value}) is distinct from 'string'`, path, 'must be a string')
      this.fail(
        `(${value} #>> '{}') <> all(array[${schema.enum.map(literal).join(', ')}])`,
        path,
        'must be one of its allowed values',
      )
      return
    }
    if (schema.type === 'object') this.object(schema, value, path, depth)
    else if (schema.type === 'array') this.array(schema, value, path, depth)
    else if (schema.type === 'string') this.string(schema, value, path)
    else if (schema.type === 'integer') this.integer(schema, value, path)
    else throw new Error(`submission SQL: no translation for the type ${String(schema.type)}`)
  }

  private object(schema: Schema, value: string, path: string, depth: number): void {
    const properties = schema.properties ?? {}
    this.fail(`jsonb_typeof(${value}) is distinct from 'object'`, path, 'must be an object')
    if (schema.additionalProperties === false) {
      const names = Object.keys(properties).map(literal).join(', ')
      this.line(`unknown := (select k from jsonb_object_keys(${value}) k where k <> all(array[${names}]) limit 1);`)
      this.line(
        `if unknown is not null then return ${path} || '/' || unknown || ' is not an allowed property'; end if;`,
      )
    }
    for (const name of schema.required ?? [])
      this.fail(`not (${value} ? ${literal(name)})`, `${path} || '/${name}'`, 'is required')
    for (const [name, property] of Object.entries(properties)) {
      const inner = new Checks(`${this.indent}  `)
      inner.add(property, `${value} -> ${literal(name)}`, `${path} || '/${name}'`, depth)
      this.variables.push(...inner.variables)
      this.line(`if ${value} ? ${literal(name)} then`)
      this.lines.push(inner.text())
      this.line('end if;')
    }
  }

  private array(schema: Schema, value: string, path: string, depth: number): void {
    this.fail(`jsonb_typeof(${value}) is distinct from 'array'`, path, 'must be an array')
    if (schema.minItems !== undefined) {
      this.fail(
        `jsonb_array_length(${value}) < ${schema.minItems}`,
        path,
        `must have at least ${schema.minItems} items`,
      )
    }
    if (schema.maxItems !== undefined) {
      this.fail(`jsonb_array_length(${value}) > ${schema.maxItems}`, path, `must have at most ${schema.maxItems} items`)
    }
    if (schema.items === undefined) return
    const index = `i${depth}`
    this.variables.push(`${index} int;`)
    const inner = new Checks(`${this.indent}  `)
    inner.add(schema.items, `${value} -> ${index}`, `${path} || '/' || ${index}`, depth + 1)
    this.variables.push(...inner.variables)
    this.line(`for ${index} in 0 .. jsonb_array_length(${value}) - 1 loop`)
    this.lines.push(inner.text())
    this.line('end loop;')
  }

  private string(schema: Schema, value: string, path: string): void {
    const text = `(${value} #>> '{}')`
    this.fail(`jsonb_typeof(${value}) is distinct from 'string'`, path, 'must be a string')
    // char_length counts code points, as TypeBox's minLength and maxLength do.
    if (schema.minLength !== undefined) {
      this.fail(`char_length${text} < ${schema.minLength}`, path, `must have at least ${schema.minLength} characters`)
    }
    if (schema.maxLength !== undefined) {
      this.fail(`char_length${text} > ${schema.maxLength}`, path, `must have at most ${schema.maxLength} characters`)
    }
    if (schema.pattern !== undefined) {
      const pattern = PATTERNS[schema.pattern]
      if (pattern === undefined) throw new Error(`submission SQL: no translation for the pattern ${schema.pattern}`)
      this.fail(`${text} !~ ${literal(pattern)}`, path, 'must not contain control characters')
    }
    if (schema.format !== undefined) {
      if (schema.format !== 'date-time')
        throw new Error(`submission SQL: no translation for the format ${schema.format}`)
      this.fail(`rfc3339_instant${text} is null`, path, 'must be an RFC 3339 date-time')
    }
  }

  private integer(schema: Schema, value: string, path: string): void {
    const number = `(${value})::numeric`
    // Two statements: SQL does not promise to evaluate an OR's operands in order, and the cast fails
    // on anything but a number.
    this.fail(`jsonb_typeof(${value}) is distinct from 'number'`, path, 'must be an integer')
    this.fail(`${number} <> trunc(${number})`, path, 'must be an integer')
    if (schema.minimum !== undefined) this.fail(`${number} < ${schema.minimum}`, path, `must be >= ${schema.minimum}`)
    if (schema.maximum !== undefined) this.fail(`${number} > ${schema.maximum}`, path, `must be <= ${schema.maximum}`)
  }
}

/** The checks of `schema` over `body`, as PL/pgSQL statements: throws at a rule it cannot translate. */
export function checksSql(schema: object): string {
  const checks = new Checks()
  checks.add(schema as Schema, 'body', "''")
  return checks.text()
}

/**
 * A function returning the first rule `body` breaks, at its JSON pointer (`/items/0/quantity must be
 * >= 1`), or null: the schema's checks, then what a schema cannot say (rules.ts, schedule) for each
 * of its orders (`orders`, an expression over `body`; `orderPath`, the pointer to order `o`).
 */
function problemFunction(name: string, source: string, schema: Schema, orders: string, orderPath: string): string {
  const checks = new Checks()
  checks.add(schema, 'body', "''")
  const [first, second] = schedule.exclusive
  const earliest = new Date(schedule.earliestRunAt).toISOString()
  const latest = new Date(schedule.latestRunAt).toISOString()
  const variables = [...new Set(['unknown text;', ...checks.variables, 'o int;', 'instant timestamptz;'])]
  return `-- Generated from ${source} (rules.ts).
create or replace function ${name}(body jsonb) returns text
language plpgsql stable set search_path from current as $fn$
declare
  ${variables.join('\n  ')}
begin
${checks.text()}
  for o in 0 .. jsonb_array_length(${orders}) - 1 loop
    if (${orders} -> o) ? '${first}' and (${orders} -> o) ? '${second}' then
      return ${orderPath} || '/${second} must not be given with ${first}';
    end if;
    instant := rfc3339_instant(${orders} -> o ->> '${first}');
    if instant < '${earliest}' or instant > '${latest}' then
      return ${orderPath} || '/${first} must be an instant from ${earliest.slice(0, 19)}Z to ${latest.slice(0, 19)}Z';
    end if;
  end loop;
  return null;
end
$fn$;`
}

/** The defaults an order's schema declares, as the api's validator fills them before it hashes a body. */
function defaultsOf(schema: Schema): Record<string, unknown> {
  const defaults: Record<string, unknown> = {}
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    if (property.default !== undefined) defaults[name] = property.default
  }
  return defaults
}

/** SQLSTATEs the submit functions raise: an order that breaks a rule, a key used for another request. */
export const SUBMISSION_REFUSED = 'PQ001'
export const IDEMPOTENCY_KEY_REUSED = 'PQ002'

/**
 * The migration that installs SQL submission: the helpers, the generated rule checks, and the two
 * functions a team calls. Run in the queue's schema, which every function pins as its search_path.
 */
export function submissionFunctionsSql(): string {
  const defaults = literal(JSON.stringify(defaultsOf(NewOrderBody as Schema)))
  const hash = (body: string) => `encode(sha256(convert_to(canonical_json(${body}), 'UTF8')), 'hex')`
  return `-- Written by \`pnpm db:submission\` from packages/db/src/submission/sql.ts: change the rules there
-- (rules.ts), not here.
-- Every function pins the queue's schema (then pg_temp) as its search_path: the one this migration
-- runs in. submit_order and submit_orders run as their owner (security definer), so a role that may
-- only submit needs EXECUTE on them and USAGE on the schema, and nothing on the tables.
select set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);
--> statement-breakpoint

-- The instant an RFC 3339 date-time names, to the millisecond (as JavaScript's Date.parse reads it),
-- or null: not the format, a day its month does not have, a leap second, a year before 1969.
create or replace function rfc3339_instant(value text) returns timestamptz
language plpgsql stable set search_path from current as $fn$
declare
  part text[] := regexp_match(value,
    '^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.[0-9]+)?([Zz]|([+-])([0-9]{2}):([0-9]{2}))$');
begin
  -- One condition at a time: SQL does not promise to evaluate an OR's operands in order, and
  -- make_date fails on a month or year out of range.
  if part is null or part[1]::int < 1969 then return null; end if;
  if part[2]::int not between 1 and 12 or part[3]::int < 1 then return null; end if;
  if part[3]::int > extract(day from make_date(part[1]::int, part[2]::int, 1) + interval '1 month - 1 day') then
    return null;
  end if;
  if part[4]::int > 23 or part[5]::int > 59 or part[6]::int > 59 then return null; end if;
  if coalesce(part[10]::int, 0) > 23 or coalesce(part[11]::int, 0) > 59 then return null; end if;
  -- The local time read as UTC, less its offset: PostgreSQL's own parser refuses offsets past 15:59,
  -- which RFC 3339 (and the api) allow up to 23:59.
  return format('%s-%s-%sT%s:%s:%s%sZ', part[1], part[2], part[3], part[4], part[5], part[6],
                left(coalesce(part[7], ''), 4))::timestamptz
         - case part[9] when '-' then -1 else 1 end
           * make_interval(hours => coalesce(part[10]::int, 0), mins => coalesce(part[11]::int, 0));
end
$fn$;
--> statement-breakpoint

${problemFunction('order_problem', 'NewOrderBody', NewOrderBody as Schema, 'jsonb_build_array(body)', "''")}
--> statement-breakpoint

${problemFunction('order_batch_problem', 'NewOrderBatchBody', NewOrderBatchBody as Schema, "(body -> 'orders')", "'/orders/' || o")}
--> statement-breakpoint

-- JSON as the api's requestHash writes it before hashing (services/api/src/submission.ts): object keys
-- sorted, no spaces. A valid order holds only strings, integers, arrays and objects.
create or replace function canonical_json(value jsonb) returns text
language sql immutable set search_path from current as $fn$
  select case jsonb_typeof(value)
    when 'object' then '{' || coalesce((
      select string_agg(to_json(key)::text || ':' || canonical_json(item), ',' order by key collate "C")
      from jsonb_each(value) as member(key, item)), '') || '}'
    when 'array' then '[' || coalesce((
      select string_agg(canonical_json(item), ',' order by position)
      from jsonb_array_elements(value) with ordinality as element(item, position)), '') || ']'
    when 'number' then trunc(value::numeric)::text
    else value::text
  end
$fn$;
--> statement-breakpoint

-- Stores valid orders, their defaults filled, as POST /orders does: the total computed, due now or
-- scheduled (runAt, or delaySeconds on the database's clock), under the Idempotency-Key if one is
-- given (the api's keys: \`request_hash\` is its hash of the same body), the workers woken when the
-- caller commits (NOTIFY is transactional). Returns the ids, or the ids the key stored before.
create or replace function store_submission(submitted jsonb, key_given text, hash text) returns bigint[]
language plpgsql volatile set search_path from current as $fn$
declare
  ids bigint[];
  taken idempotency_keys;
  due_now boolean;
  earliest timestamptz;
begin
  -- The orderingKeys' locks first (queries/ordering-keys.ts), in key order; then the ids, drawn in
  -- the order the keys' lines are joined; the insert, a later statement, sees the last holder's commit.
  insert into ordering_keys (key)
  select distinct value ->> 'orderingKey' from jsonb_array_elements(submitted)
  where value ->> 'orderingKey' is not null order by 1
  on conflict (key) do update set key = excluded.key where false;
  ids := array(select nextval('orders_id_seq') from generate_series(1, jsonb_array_length(submitted)));
  if key_given is not null then
    insert into idempotency_keys (key, request_hash, order_ids) values (key_given, hash, ids)
    on conflict (key) do nothing;
    if not found then
      -- Taken, earlier or by a concurrent duplicate (whose commit this insert waited for).
      select * into taken from idempotency_keys where key = key_given;
      if taken.request_hash <> hash then
        raise exception using errcode = '${IDEMPOTENCY_KEY_REUSED}',
          message = format('Idempotency-Key %s was used for another request; nothing was stored', key_given);
      end if;
      return taken.order_ids;
    end if;
  end if;
  with input as (
    select ids[position] as id, value as body, value ->> 'orderingKey' as ordering_key,
           row_number() over (partition by value ->> 'orderingKey' order by position) as place_in_key,
           greatest(coalesce(rfc3339_instant(value ->> 'runAt'),
                             statement_timestamp() + (value ->> 'delaySeconds')::int * interval '1 second',
                             statement_timestamp()),
                    statement_timestamp()) as run_at
    from jsonb_array_elements(submitted) with ordinality as submission(value, position)
  ),
  stored as (
    insert into orders (id, customer_id, currency, items, total_cents, status, priority, run_at, max_attempts,
                        ordering_key, created_at, updated_at)
    overriding system value
    select id, body ->> 'customerId', body ->> 'currency', body -> 'items',
           (select sum((item ->> 'quantity')::bigint * (item ->> 'unitPriceCents')::bigint)
            from jsonb_array_elements(body -> 'items') as item),
           case
             -- Behind an earlier order of its key: this submission's, or a head already in line.
             when ordering_key is not null and (place_in_key > 1 or exists (
               select from orders as head
               where head.ordering_key = input.ordering_key
                 and ${HEAD_STATUS})) then 'waiting'
             when run_at > statement_timestamp() then 'scheduled'
             else 'pending' end,
           (body ->> 'priority')::int, run_at, (body ->> 'maxAttempts')::int,
           ordering_key, statement_timestamp(), statement_timestamp()
    from input
    order by id
    returning status, run_at
  )
  select bool_or(status = 'pending'), min(run_at) filter (where status = 'scheduled')
  into due_now, earliest
  from stored;
  -- As the api's wake-ups say it (queries/wakeups.ts): '' for due now, else the due time in ms.
  if due_now then perform pg_notify(current_schema() || '_orders', ''); end if;
  if earliest is not null then
    perform pg_notify(current_schema() || '_orders', (extract(epoch from earliest) * 1000)::bigint::text);
  end if;
  return ids;
end
$fn$;
--> statement-breakpoint

-- One order (an object as POST /orders takes it), stored in the caller's transaction; its id.
-- Refused with SQLSTATE ${SUBMISSION_REFUSED} and the rule it breaks, or ${IDEMPOTENCY_KEY_REUSED} for a key used
-- for another request: nothing is stored.
create or replace function submit_order(new_order jsonb, idempotency_key text default null) returns bigint
language plpgsql volatile security definer set search_path from current as $fn$
declare
  problem text := order_problem(new_order);
  filled jsonb;
begin
  if problem is not null then
    raise exception using errcode = '${SUBMISSION_REFUSED}', message = 'order' || problem;
  end if;
  filled := ${defaults}::jsonb || new_order;
  return (store_submission(jsonb_build_array(filled), idempotency_key, ${hash('filled')}))[1];
end
$fn$;
--> statement-breakpoint

-- Up to 1,000 orders (an array, as POST /orders/batch takes them), stored whole or not at all; their
-- ids in order. Refused as submit_order is.
create or replace function submit_orders(new_orders jsonb, idempotency_key text default null) returns bigint[]
language plpgsql volatile security definer set search_path from current as $fn$
declare
  body jsonb := jsonb_build_object('orders', new_orders);
  problem text := order_batch_problem(body);
begin
  if problem is not null then
    raise exception using errcode = '${SUBMISSION_REFUSED}', message = 'batch' || problem;
  end if;
  body := jsonb_build_object('orders', (
    select jsonb_agg(${defaults}::jsonb || value order by position)
    from jsonb_array_elements(new_orders) with ordinality as submission(value, position)));
  return store_submission(body -> 'orders', idempotency_key, ${hash('body')});
end
$fn$;
--> statement-breakpoint

revoke all on function rfc3339_instant(text), order_problem(jsonb), order_batch_problem(jsonb),
  canonical_json(jsonb), store_submission(jsonb, text, text), submit_order(jsonb, text),
  submit_orders(jsonb, text) from public;
`
}
