"""The one source of the version: setup.cfg reads it (``version = attr: ...``) and every
top-level package re-exports it as ``__version__``."""

__version__ = "0.1.0"
