import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { AppError, errorCatalogue, problemType, type ErrorCode } from '../errors.js';

/** Sends an RFC 9457 problem document. */
export function sendProblem(reply: FastifyReply, req: FastifyRequest, code: ErrorCode, detail: string, extra: Record<string, unknown> = {}) {
  const { status, title } = errorCatalogue[code];
  return reply
    .code(status)
    .type('application/problem+json')
    .send({ type: problemType(code), title, status, detail, instance: req.url.split('?')[0], ...extra });
}

const fastifyCodes: Record<number, ErrorCode> = {
  400: 'bad-request',
  404: 'not-found',
  405: 'method-not-allowed',
  413: 'body-too-large',
  415: 'unsupported-media-type',
  429: 'too-many-requests',
  503: 'unavailable',
};

function describeValidation(err: FastifyError): string {
  const where = err.validationContext === 'querystring' ? 'query' : (err.validationContext ?? 'request');
  const lines = (err.validation ?? []).map((v) => {
    const field = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
    return `${where}${field ? `.${field}` : ''}: ${v.message}`;
  });
  return `The request is invalid: ${lines.join('; ')}.`;
}

/** The one place that turns errors into HTTP answers; 5xx internals never leave the server. */
export function registerProblemHandlers(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof AppError) {
      if (err.status >= 500) req.log.warn({ code: err.code }, err.detail);
      if (typeof err.extra.retryAfter === 'number') {
        reply.header('retry-after', String(err.extra.retryAfter));
        const { retryAfter: _, ...rest } = err.extra;
        return sendProblem(reply, req, err.code, err.detail, rest);
      }
      return sendProblem(reply, req, err.code, err.detail, err.extra);
    }
    if (hasZodFastifySchemaValidationErrors(err)) return sendProblem(reply, req, 'bad-request', describeValidation(err));
    if (isResponseSerializationError(err)) {
      req.log.error({ err }, 'response did not match its schema');
      return sendProblem(reply, req, 'internal', 'The server failed to build its answer. The error is in the server log.');
    }
    const status = err.statusCode ?? 500;
    const code = fastifyCodes[status];
    if (code && status < 500) {
      const detail =
        code === 'body-too-large'
          ? 'The request body is larger than 1 MiB.'
          : code === 'unsupported-media-type'
            ? `Content type '${req.headers['content-type'] ?? ''}' is not accepted here; send JSON with Content-Type: application/json.`
            : err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError
              ? `The body is not valid JSON: ${err.message}`
              : err.message;
      return sendProblem(reply, req, code, detail);
    }
    req.log.error({ err }, 'unhandled error');
    return sendProblem(reply, req, 'internal', 'Something went wrong on the server. The error is in the server log.');
  });

  app.setNotFoundHandler((req, reply) =>
    sendProblem(reply, req, 'not-found', `There is no ${req.method} ${req.url.split('?')[0]} on this server.`),
  );
}
