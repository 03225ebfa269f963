"""painterid: were these two paintings made by the same artist?"""

__version__ = "0.1.0"
