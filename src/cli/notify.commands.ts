import type { Command } from 'commander';
import { deleteAllPushSubscriptions, Notifications } from '../core/notify/index.js';
import { findUser } from '../core/people/index.js';
import { loadSecretBox } from '../core/secrets/secret-box.js';
import { AppError } from '../errors.js';
import { withDatabase, type CliIo } from './context.js';
import { withPrompter } from './people.commands.js';

export function registerNotifyCommands(program: Command, io: CliIo) {
  program
    .command('webpush')
    .description("push a message to one person's devices now")
    .argument('<user>', 'username or id')
    .argument('<message...>', 'the text to show')
    .action(async (ref: string, words: string[]) => {
      const message = words.join(' ').trim();
      if (!message) throw new AppError('bad-request', 'Give the message to push.');
      await withDatabase(io, async (database, config) => {
        const user = await findUser(database, ref);
        const notifications = new Notifications({ database, config, secrets: loadSecretBox(config), baseUrl: () => config.publicUrl ?? '' });
        try {
          const r = await notifications.pushToPerson(user.id, message);
          if (r.sent + r.removed + r.failed === 0) {
            io.err(`'${user.username}' has no device registered for push (they turn it on in the inbox under My account).\n`);
            return;
          }
          const parts = [`sent to ${r.sent} device(s)`];
          if (r.removed) parts.push(`${r.removed} expired subscription(s) removed`);
          if (r.failed) parts.push(`${r.failed} failed and will be retried by the server's worker (see the notification log)`);
          io.out(`${user.username}: ${parts.join('; ')}.\n`);
        } finally {
          notifications.close();
        }
      });
    });

  program
    .command('webpush_clear')
    .alias('webpush-clear')
    .description('delete every push subscription (asks first; everyone turns push on again in the inbox)')
    .option('--yes', 'do not ask (for scripts)')
    .action(async (opts: { yes?: boolean }) => {
      if (!opts.yes) {
        const answer = await withPrompter(io, async (p) => {
          if (!p) throw new AppError('bad-request', 'Add --yes to delete every push subscription without being asked.');
          return p.ask('Delete every push subscription of every person? [y/N] ').catch(() => '');
        });
        if (!/^y(es)?$/i.test(answer.trim())) {
          io.err('Nothing deleted.\n');
          return;
        }
      }
      const n = await withDatabase(io, (database) => deleteAllPushSubscriptions(database.db));
      io.out(`Deleted ${n} push subscription(s).\n`);
    });
}
