"""The trainer's error types, importable without loading torch (the CLI reports them as one line)."""


class TrainerError(ValueError):
    """Base of every error the trainer reports to a person; the message names the file or field."""


class ManifestError(TrainerError):
    """A manifest that cannot be used; the message names the file, the field and the reason."""


class DatasetError(TrainerError):
    """A frame or mask that cannot be read; the message names the file."""


class FlowError(TrainerError):
    """A flow provider that cannot run here; the message says what is missing."""


class ExportError(TrainerError):
    """The exported model does not match PyTorch within tolerance."""


class RunError(TrainerError):
    """A training run or evaluation that cannot start with these settings or this data."""


class RunPaused(TrainerError):
    """A run stopped between epochs because its time window closes; its checkpoint resumes it."""
