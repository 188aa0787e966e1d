import { timestamp } from 'drizzle-orm/pg-core';

/** The `created` column every table has. */
export const created = () => timestamp('created', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
