/** Aborted on the first SIGINT/SIGTERM: waiting commands stop and the app closes (running jobs are aborted). */
export const interruption = new AbortController();

/** Thrown by a command that stopped waiting because the user interrupted it. */
export class CliInterrupted extends Error {}

/**
 * First SIGINT/SIGTERM: abort {@link interruption} so the command returns and the app closes cleanly (its runners
 * abort their jobs, which are recorded FAILED). A second signal exits at once.
 */
export function installSignalHandlers(): void {
  let count = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    count += 1;
    if (count > 1) {
      process.stderr.write(`\n${signal} again: exiting without a clean shutdown\n`);
      process.exit(130);
    }
    process.stderr.write(`\n${signal}: stopping (the running job is aborted; press Ctrl-C again to force)\n`);
    interruption.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
