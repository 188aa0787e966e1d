import { z } from 'zod';
import { Timestamp } from './common.js';

export const User = z.object({
  id: z.uuid(),
  username: z.string(),
  name: z.string(),
  email: z.string().nullable(),
  role: z.enum(['admin', 'member']),
  active: z.boolean(),
  created: Timestamp,
});
export type User = z.infer<typeof User>;

export const LoginBody = z.object({ username: z.string().min(1).max(200), password: z.string().min(1).max(1000) });
export const UserResponse = z.object({ user: User });
export const SetupBody = z.object({
  token: z.string().min(1),
  username: z.string().min(1),
  name: z.string().min(1),
  email: z.email().nullish(),
  password: z.string().min(1).max(1000),
});
export const SetupStatus = z.object({ needed: z.boolean() });
export const CreateUserBody = z.object({
  username: z.string().min(1),
  name: z.string().min(1),
  email: z.email().nullish(),
  role: z.enum(['admin', 'member']).default('member'),
  password: z.string().min(1).max(1000),
});
export const UpdateUserBody = z.object({
  name: z.string().min(1).optional(),
  email: z.email().nullish(),
  role: z.enum(['admin', 'member']).optional(),
  active: z.boolean().optional(),
});
export const PasswordBody = z.object({ password: z.string().min(1).max(1000) });
export const Session = z.object({
  id: z.uuid(),
  created: Timestamp,
  last_seen: Timestamp,
  expires: Timestamp,
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  /** True for the session the request came with (own sessions only). */
  current: z.boolean().optional(),
});
export const ChangePasswordBody = z.object({ current_password: z.string().min(1).max(1000), password: z.string().min(1).max(1000) });
export const AuditEvent = z.object({
  id: z.number().int(),
  created: Timestamp,
  actor: z.object({ kind: z.string(), id: z.string().nullable(), name: z.string().nullable() }),
  ip: z.string().nullable(),
  action: z.string(),
  target: z.string().nullable(),
  details: z.record(z.string(), z.unknown()).nullable(),
});
export const AuditQuery = z.object({
  action: z.string().optional(),
  actor: z.string().optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().regex(/^\d{1,15}$/).optional(),
});
