import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify'
import type { TObject, TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import Value from 'typebox/value'

/**
 * The validator for every route, per request part. Fastify's Ajv defaults (`removeAdditional`,
 * `coerceTypes`) would drop unknown body fields and turn `"2"` into 2 without a word; here a body must
 * be exactly what its schema declares. Params and the query string are strings on the wire, so only
 * they are converted to the declared types. Defaults are filled in every part, as Ajv's `useDefaults`.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const validator = Compile(schema)
  const convert = httpPart !== 'body'
  return (input: unknown) => {
    const withDefaults = Value.Default(schema, input)
    const value = convert ? convertNumbers(schema, withDefaults) : withDefaults
    if (validator.Check(value)) return { value }
    // TypeBox reports at most 8 errors (its maxErrors): a batch wrong everywhere still gets a short answer.
    return { error: describe(validator.Errors(value)) }
  }
}

const DECIMAL = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?$/

/**
 * Converts the string properties a flat object schema declares as numbers, when they are written as
 * plain decimals. Not TypeBox's Value.Convert: it truncates "1.5" to 1 and reads "0x10" and "1e3",
 * so /orders/1.5 would return order 1; here such strings stay strings and fail the check.
 */
function convertNumbers(schema: TSchema, input: unknown): unknown {
  if (typeof input !== 'object' || input === null || !('properties' in schema)) return input
  const fields = input as Record<string, unknown>
  for (const [name, property] of Object.entries((schema as TObject).properties)) {
    const value = fields[name]
    const numeric = 'type' in property && (property.type === 'integer' || property.type === 'number')
    if (numeric && typeof value === 'string' && DECIMAL.test(value)) fields[name] = Number(value)
  }
  return fields
}

type TypeBoxError = ReturnType<ReturnType<typeof Compile>['Errors']>[number]

/**
 * TypeBox's errors in Fastify's shape, each pointing at the offending property itself. An unknown
 * property is reported twice, as a failed `false` schema at its own path and in its parent's
 * additionalProperties error; both become the same entry, kept once.
 */
function describe(errors: readonly TypeBoxError[]): FastifySchemaValidationError[] {
  const described = new Map<string, FastifySchemaValidationError>()
  const add = (error: FastifySchemaValidationError) => described.set(`${error.instancePath} ${error.message}`, error)
  for (const error of errors) {
    const { keyword, instancePath, schemaPath, message } = error
    const params = error.params as Record<string, unknown>
    if (keyword === 'boolean' && schemaPath.endsWith('/additionalProperties')) {
      add({ keyword: 'additionalProperties', instancePath, schemaPath, params, message: UNKNOWN_PROPERTY })
    } else if (keyword === 'additionalProperties') {
      for (const name of params.additionalProperties as string[]) {
        add({ keyword, instancePath: pointer(instancePath, name), schemaPath, params, message: UNKNOWN_PROPERTY })
      }
    } else if (keyword === 'required') {
      for (const name of params.requiredProperties as string[]) {
        add({ keyword, instancePath: pointer(instancePath, name), schemaPath, params, message: 'is required' })
      }
    } else {
      add({ keyword, instancePath, schemaPath, params, message })
    }
  }
  return [...described.values()]
}

const UNKNOWN_PROPERTY = 'is not an allowed property'

function pointer(parent: string, name: string): string {
  return `${parent}/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`
}
