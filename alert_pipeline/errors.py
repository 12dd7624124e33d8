"""The one exception for failures the pipeline can explain to its user in one line (a bad
setting, a home folder that does not exist, a run that failed): no traceback needed."""


class PipelineError(Exception):
    """The message is the whole, one-line reason shown to the user."""
