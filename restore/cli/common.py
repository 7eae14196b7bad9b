"""What every command-line tool shares: user errors as one line, a non-zero exit, no traceback, no hang."""
import gc
import os
import sys

from restore.utils.errors import RestoreError

EXIT_USER_ERROR = 2
EXIT_SIGINT = 130   # 128 + SIGINT
EXIT_SIGTERM = 143  # 128 + SIGTERM

# torch re-raises an error from a DataLoader worker as the same type with the worker's traceback
# in the message; its last line is `<module>.<Class>: <the original message>`.
_WORKER_PREFIX = "Caught "


def one_line(error: BaseException) -> str:
    """The user-facing line of an error, also when it was raised inside a DataLoader worker."""
    text = str(error)
    if text.startswith(_WORKER_PREFIX) and "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        head, sep, message = last.partition(": ")
        return message if sep and " " not in head else last
    return text.splitlines()[0] if text else type(error).__name__


def run_cli(main, argv=None) -> int:
    """Run `main(argv)`; a RestoreError prints `error: <message>` and exits 2.

    With `--debug` on the command line (or RESTORE_DEBUG=1) the traceback is kept.
    """
    from restore.data.worker_signals import stop_leftover_workers
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RESTORE_DEBUG") == "1"
    try:
        code = main(argv)
    except RestoreError as e:
        if debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    finally:
        # An error raised while a DataLoader iterates leaves its iterator alive in a reference cycle
        # with the traceback, and torch's own shutdown of it waits 10 s per worker that ignores
        # SIGTERM (ours do); multiprocessing's exit handler would then wait on them forever. The
        # data is no longer needed: kill what is left, then let the iterators go.
        stop_leftover_workers()
        gc.collect()
    return int(code or 0)


def entry(main):
    """Make a console-script function: `restore-x = restore.cli.x:cli`."""
    def cli():
        sys.exit(run_cli(main))
    return cli
