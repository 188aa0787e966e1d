export * from './notify.js';
export * from './notifications.service.js';
export * from './settings.service.js';
export * from './action-links.service.js';
export { readVapidFolder, type VapidKeys } from './vapid.js';
export { releaseAllNotificationLeases, deleteAllPushSubscriptions, deleteExpiredActionLinks } from './notify.repo.js';
