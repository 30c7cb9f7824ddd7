"""The one exception type for problems the user can fix."""


class DeepLSMError(ValueError):
    """Bad input or configuration; the message is written for the user.

    It subclasses :class:`ValueError` so that code (and scikit-learn checks) catching
    ``ValueError`` still catch it. The CLI turns it into ``deeplsm: error: <message>`` and exit
    code 2.
    """
