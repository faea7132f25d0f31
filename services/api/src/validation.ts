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
  const fillDefaults = compileDefaults(schema)
  const convert = httpPart !== 'body'
  return (input: unknown) => {
    const withDefaults = fillDefaults(input)
    const value = convert ? convertNumbers(schema, withDefaults) : withDefaults
    if (validator.Check(value)) return { value }
    // TypeBox reports at most 8 errors (its maxErrors): a batch wrong everywhere still gets a short answer.
    return { error: describe(validator.Errors(value)) }
  }
}

/**
 * `Value.Default(schema, value)`, walking only the parts of the schema that declare a default.
 * TypeBox's walk visits every value of the body and checks each schema's kind as it goes: for a
 * batch of 1,000 orders, whose only defaults are two fields of each order, it was 89% of the time
 * spent validating and a tenth of the api's CPU per order (docs/performance.md). Objects and arrays
 * are walked here; any other schema that holds a default is left to TypeBox, whole.
 */
export function compileDefaults(schema: TSchema): (value: unknown) => unknown {
  if (!mayDeclareDefault(schema)) return (value) => value
  const node = schema as Record<string, unknown>
  const plain = !('default' in node) && COMBINING.every((key) => !(key in node))
  if (plain && node.type === 'object' && typeof node.properties === 'object' && node.properties !== null) {
    const additional = node.additionalProperties
    if (additional === undefined || typeof additional === 'boolean') {
      const fields = Object.entries(node.properties as Record<string, TSchema>)
        .filter(([, property]) => mayDeclareDefault(property))
        .map(([key, property]) => [key, compileDefaults(property)] as const)
      return (value) => {
        if (typeof value !== 'object' || value === null) return value
        const object = value as Record<string, unknown>
        for (const [key, fill] of fields) {
          const filled = fill(object[key])
          if (filled !== undefined) object[key] = filled
        }
        return value
      }
    }
  }
  if (plain && node.type === 'array' && typeof node.items === 'object' && !Array.isArray(node.items)) {
    const fill = compileDefaults(node.items as TSchema)
    return (value) => {
      if (!Array.isArray(value)) return value
      for (let i = 0; i < value.length; i++) value[i] = fill(value[i])
      return value
    }
  }
  // A scalar's default applies only where the value is missing; a primitive one is its own copy.
  const scalar = [...COMBINING, 'properties', 'additionalProperties', 'items'].every((key) => !(key in node))
  if (!scalar) return (value) => Value.Default(schema, value)
  const primitive = typeof node.default !== 'object' && typeof node.default !== 'function'
  return primitive
    ? (value) => (value === undefined ? node.default : value)
    : (value) => (value === undefined ? Value.Default(schema, value) : value)
}

/** Keywords whose schemas apply to a value beside or instead of its plain properties or items. */
const COMBINING = ['allOf', 'anyOf', 'oneOf', 'not', '$ref', '$defs', 'patternProperties', 'prefixItems']

/** Whether `schema` or a schema inside it declares a default (a reference may lead to one). */
function mayDeclareDefault(schema: unknown): boolean {
  if (typeof schema !== 'object' || schema === null) return false
  if (Array.isArray(schema)) return schema.some(mayDeclareDefault)
  return 'default' in schema || '$ref' in schema || Object.values(schema).some(mayDeclareDefault)
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
