export * from './tasks.js';
export * from './tasks.service.js';
export { deleteExpiredIdempotencyKeys } from './idempotency.repo.js';
export * from './task-updates.service.js';
export * from './wait.js';
