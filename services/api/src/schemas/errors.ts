import Type, { type Static } from 'typebox'

/** The one shape of every error response. */
export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String({ description: 'the HTTP reason phrase' }),
  code: Type.String({ description: 'stable, for programs: VALIDATION_FAILED, ORDER_NOT_FOUND, ...' }),
  message: Type.String({ description: 'for people' }),
  details: Type.Optional(
    Type.Array(
      Type.Object({
        path: Type.String({ description: 'JSON pointer into the request part that failed validation' }),
        message: Type.String(),
      }),
    ),
  ),
})
export type ErrorResponse = Static<typeof ErrorResponse>
