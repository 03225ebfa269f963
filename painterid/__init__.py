"""painterid: were these two paintings made by the same artist?"""

from painterid.core.version import __version__
