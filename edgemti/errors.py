"""The one error hierarchy of edgemti. The library raises these; only the CLI turns them into messages."""


class EdgemtiError(Exception):
    """Base of every error edgemti raises on purpose. The message names the problem and the fix.

    The message speaks the library's language, never a front end's: ``options`` names the library parameters
    (keyword names such as ``"fit_spec"``, ``"data_dir"``, ``"force"``) whose change fixes the problem, and a
    front end (the CLI) maps them to its own spelling (``--fit-spec``) in one place.
    """

    def __init__(self, *args: object, options: tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.options: tuple[str, ...] = tuple(options)


class ConfigError(EdgemtiError):
    """A user-supplied option, spec or config is invalid."""


class DataError(EdgemtiError):
    """A data file or folder is missing or malformed."""


class UnknownTaskError(EdgemtiError):
    """A task name is not in the registry (or not in a build)."""


class BackboneMismatchError(EdgemtiError):
    """A task pack was trained on a different backbone than the one it is used with."""


class FormatError(EdgemtiError):
    """An on-disk file (image, pack, manifest, log) is corrupt, truncated or of an unknown version."""


class CapacityError(EdgemtiError):
    """Something does not fit a memory of the architecture."""


class RequestError(EdgemtiError):
    """A serving request is malformed (bad JSON, missing field, text too long, ...)."""


class SpecError(ConfigError):
    """An architecture spec (hwmodel TOML) is invalid; the message lists every problem found."""
