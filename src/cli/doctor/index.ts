import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
import type { CliIo } from '../context.js';

export type { CheckResult } from './check.js';
export type { DoctorOptions } from './doctor.js';
export { satisfies } from './local-checks.js';

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 300) throw new InvalidArgumentError('must be a number of seconds from 0.1 to 300.');
  return n;
}

export function registerDoctorCommand(program: Command, io: CliIo) {
  program
    .command('doctor')
    .description('check the setup and say what to fix: Node.js, configuration, database and migrations, secret key, web push keys, public URL, SMTP, hook URLs (changes nothing)')
    .option('--json', 'machine-readable output')
    .addOption(new Option('--timeout <seconds>', 'how long each network check may take').default(5).argParser(parseSeconds))
    .action(async (opts: { json?: boolean; timeout: number }) => {
      // Loaded when asked for: the checks (SMTP, database, hooks) weigh on every other command's start.
      const [{ runDoctor }, { formatReport, reportJson }] = await Promise.all([import('./doctor.js'), import('./report.js')]);
      const results = await runDoctor(io, { timeoutMs: Math.round(opts.timeout * 1000) });
      io.out(opts.json ? reportJson(results) : formatReport(results));
      // Exit code 1 without another message: the report said it all.
      if (results.some((r) => r.status === 'fail')) throw new CommanderError(1, 'task-inbox.doctor.failed', '');
    });
}
