"""Errors that end a command, each with the exit code the CLI gives it."""


class BotError(Exception):
    """A failure with one clear line for stderr and an exit code."""

    exit_code = 3


class BadInput(BotError):
    """The series itself is bad input: no such message, not a patch, a broken mbox."""

    exit_code = 1


class UsageError(BotError):
    """The command line or config.toml is wrong."""

    exit_code = 2


class OperationalError(BotError):
    """Something around us failed: server unreachable, a tool missing, a timeout."""

    exit_code = 3
