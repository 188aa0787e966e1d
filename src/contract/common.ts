import { z } from 'zod';

/** Free-form JSON object attached to tasks (SPEC §4). */
export const Meta = z.record(z.string(), z.unknown());
export type Meta = z.infer<typeof Meta>;

/** ISO 8601 timestamp as it crosses the wire. */
export const Timestamp = z.string().meta({ description: 'ISO 8601 date-time', format: 'date-time' });

/** RFC 9457 problem details: every error answer has this body. */
export const Problem = z.object({
  type: z.string().describe('`urn:task-inbox:problem:<code>`; stable (the codes are listed in docs/api.md)'),
  title: z.string().describe('The problem type in a few words'),
  status: z.number().int().describe('The HTTP status'),
  detail: z.string().describe('What went wrong in this request, and what to do about it'),
  instance: z.string().optional().describe('The request path'),
  errors: z.array(z.unknown()).optional().describe('Each problem, where there are several (a task schema file: line, column, field, message)'),
  receiver: z
    .object({ status: z.number().int().nullable(), body: z.string().nullable(), error: z.string().nullable() })
    .optional()
    .describe('With `webhook-refused`: what the application server answered (status, the first 500 bytes of the body, or the network error)'),
});
export type Problem = z.infer<typeof Problem>;
