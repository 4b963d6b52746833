"""The one base class of every error a user can fix: a bad file, a bad param, a damaged model.

The CLI prints such an error as one line naming its cause (and the file), never a traceback;
`mtlrec --debug` shows the traceback when one is wanted.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message names the cause and the file."""
