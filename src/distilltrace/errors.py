"""Errors that the CLI turns into one readable line (no traceback unless --debug)."""


class DistilltraceError(Exception):
    """Base class: a user-facing error whose message is one readable line."""


class ModelSpecError(DistilltraceError):
    """A model spec string that does not parse or names nothing loadable."""


class CapabilityError(DistilltraceError):
    """A backend asked for an operation it does not support (e.g. logprobs)."""


class EndpointError(DistilltraceError):
    """An HTTP endpoint that is unreachable, refuses the key, or keeps failing."""


class InputError(DistilltraceError):
    """A bad input file, column, parameter or data set."""
