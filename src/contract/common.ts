import { z } from 'zod';

/** Free-form JSON object attached to tasks (SPEC §4). */
export const Meta = z.record(z.string(), z.unknown());
export type Meta = z.infer<typeof Meta>;

/** ISO 8601 timestamp as it crosses the wire. */
export const Timestamp = z.string().describe('ISO 8601 date-time');

/** RFC 9457 problem details: every error answer has this body. */
export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().optional(),
  errors: z.array(z.unknown()).optional(),
  /** With `webhook-refused`: what the application server answered. */
  receiver: z.object({ status: z.number().int().nullable(), body: z.string().nullable(), error: z.string().nullable() }).optional(),
});
export type Problem = z.infer<typeof Problem>;
